"""`python -m hpo.report --space NAME`: a study's leaderboard, read back from MLflow.

Prints the best complete trials of a study (by the study's metric, in its direction) with their
batch settings, how many trials ran out of memory and where, and the best configuration. The
study is the most recent one of the space unless `--study` names one; `--json` prints the report
as one JSON object: `space`, `study`, `metric`, `direction`, `settings`, `num_trials`,
`num_complete`, `num_pruned_oom`, `num_failed`, `oom_stages` (stage -> count), `best`
(`trial_id`, `config`, `metric`; null when no trial completed) and `leaderboard`.

It reads the MLflow layout a study writes: experiment `hpo-<space>`, one parent run per study
(tags `hpo.role=study`, `hpo.study`, `hpo.metric`, `hpo.direction`) and under it one child run
per trial (tags `hpo.role=trial`, `hpo.trial_id`, `state`, `oom`, `oom_stage`; the trial's
config and applied batch sizes as params; the metric's last value as a metric).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.tracking.store import default_tracking_uri, sqlite_path
from trainables.cli import configure_logging, run_cli
from trainables.errors import UserError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = ["build_report", "format_report", "main"]

DEFAULT_TOP = 5
# hpo.run's default; not imported, so that `--help` and the errors before MLflow stay fast.
DEFAULT_STUDY_DIR = Path("studies")
EXPERIMENT_PREFIX = "hpo-"
_HEALTH_TIMEOUT_S = 3.0
_PAGE_SIZE = 1000
# Params a trial measured rather than was given: not part of its configuration.
_MEASURED_PARAMS = ("applied_train_batch_size", "eval_batch_size", "tuned_max_batch_size")
_LEADERBOARD_PARAMS = (
    "batch_size",
    "applied_train_batch_size",
    "eval_batch_size",
    "tuned_max_batch_size",
    "safety_factor",
    "eval_multiplier",
    "schedule_type",
    "learning_rate",
)
_SCHEDULE_PREFIX = "schedule_"
_SETTING_TAGS = ("mode", "dataset", "model_size", "seed", "device_type", "memory_budget")
_DIRECTIONS = ("max", "min")
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def build_report(
    client: MlflowClient, space: str, study: str | None = None, top: int = DEFAULT_TOP
) -> dict[str, Any]:
    """The report of one study of `space`, from the MLflow tracking store behind `client`.

    Args:
        client: An MLflow client of the store the studies were tracked in.
        space: The search space (experiment `hpo-<space>`).
        study: The study's name (its parent run's `hpo.study` tag); default None, the study
            whose parent run started last.
        top: How many complete trials the leaderboard holds; default 5.

    Returns:
        A new dict (see the module docstring); its leaderboard rows hold `rank`, `trial_id`,
        `run_id`, `metric` and the batch settings, numbers as numbers.

    Raises:
        UserError: The store has no study of `space`, or none named `study`, or the study's
            run lacks its metric or direction.
        ValueError: `top` is below 1.

    Example:
        >>> from mlflow import MlflowClient
        >>> client = MlflowClient("sqlite:////path/to/studies/mlflow.db")  # doctest: +SKIP
        >>> build_report(client, "curriculum", top=3)["best"]["config"]  # doctest: +SKIP
        {'batch_size': 256, 'safety_factor': 0.8, ...}
    """
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top=}")
    where = client.tracking_uri
    experiment = client.get_experiment_by_name(f"{EXPERIMENT_PREFIX}{space}")
    if experiment is None or experiment.lifecycle_stage != "active":
        raise UserError(f"no studies of space {space!r} in {where}")
    parents = _search_all(
        client,
        experiment.experiment_id,
        "tags.`hpo.role` = 'study'",
        order_by=["attributes.start_time DESC"],
    )
    if not parents:
        raise UserError(f"no studies of space {space!r} in {where}")
    parent = _pick_study(parents, study, space, where)
    tags = parent.data.tags
    name = tags.get("hpo.study", parent.info.run_name)
    metric = tags.get("hpo.metric")
    direction = tags.get("hpo.direction")
    if not metric or direction not in _DIRECTIONS:
        raise UserError(
            f"study {name!r} in {where} lacks its metric or direction (tags hpo.metric="
            f"{metric!r}, hpo.direction={direction!r}); was it tracked by hpo.run?"
        )
    children = _search_all(
        client,
        experiment.experiment_id,
        f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    trials = _trial_rows(children, metric)
    complete = [row for row in trials if row["state"] == "complete" and row["metric"] is not None]
    # Best first; ties by trial id, so the order is the same on every read.
    complete.sort(key=lambda row: row["trial_id"])
    complete.sort(key=lambda row: row["metric"], reverse=direction == "max")
    oom = [row for row in trials if row["state"] == "pruned-oom"]
    leaderboard = [_leaderboard_row(rank, row) for rank, row in enumerate(complete[:top], 1)]
    best = None
    if complete:
        best = {
            "trial_id": complete[0]["trial_id"],
            "config": complete[0]["config"],
            "metric": complete[0]["metric"],
        }
    return {
        "space": space,
        "study": name,
        "run_id": parent.info.run_id,
        "metric": metric,
        "direction": direction,
        "settings": {
            key: _number_or_text(tags[tag])
            for key in _SETTING_TAGS
            for tag in (f"hpo.{key}", key)
            if tag in tags
        },
        "num_trials": len(trials),
        "num_complete": sum(row["state"] == "complete" for row in trials),
        "num_pruned_oom": len(oom),
        "num_failed": sum(row["state"] == "failed" for row in trials),
        "oom_stages": dict(sorted(Counter(row["oom_stage"] for row in oom).items())),
        "best": best,
        "leaderboard": leaderboard,
    }


def _search_all(
    client: MlflowClient, experiment_id: str, filter_string: str, *, order_by: list[str]
) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            max_results=_PAGE_SIZE,
            order_by=order_by,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _pick_study(parents: Sequence[Run], study: str | None, space: str, where: str) -> Run:
    if study is None:
        return parents[0]
    for parent in parents:
        if parent.data.tags.get("hpo.study", parent.info.run_name) == study:
            return parent
    names = [p.data.tags.get("hpo.study", p.info.run_name) for p in parents]
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    raise UserError(f"no study {study!r} of space {space!r} in {where}; its studies: {shown}")


def _trial_rows(children: Sequence[Run], metric: str) -> list[dict[str, Any]]:
    """One row per trial; a trial Ray retried has several runs, and its last one counts."""
    rows: dict[str, dict[str, Any]] = {}
    for run in children:
        tags = run.data.tags
        if tags.get("hpo.role", "trial") != "trial":
            continue
        trial_id = tags.get("hpo.trial_id") or run.info.run_name or run.info.run_id
        state = tags.get("state") or ("running" if run.info.status == "RUNNING" else "unknown")
        if tags.get("oom") == "true":
            state = "pruned-oom"
        params = {key: _number_or_text(value) for key, value in run.data.params.items()}
        value = run.data.metrics.get(metric)
        rows[trial_id] = {
            "trial_id": trial_id,
            "run_id": run.info.run_id,
            "state": state,
            "oom_stage": (tags.get("oom_stage") or "unknown") if state == "pruned-oom" else None,
            "params": params,
            "config": {k: v for k, v in sorted(params.items()) if k not in _MEASURED_PARAMS},
            "metric": value if value is not None and math.isfinite(value) else None,
        }
    return sorted(rows.values(), key=lambda row: row["trial_id"])


def _leaderboard_row(rank: int, row: dict[str, Any]) -> dict[str, Any]:
    params = row["params"]
    settings = {key: params[key] for key in _LEADERBOARD_PARAMS if key in params}
    schedule = {
        key: value
        for key, value in sorted(params.items())
        if key.startswith(_SCHEDULE_PREFIX) and key != "schedule_type"
    }
    return {
        "rank": rank,
        "trial_id": row["trial_id"],
        "run_id": row["run_id"],
        "metric": row["metric"],
        **settings,
        **schedule,
    }


def _number_or_text(text: str) -> Any:
    """An MLflow param (always a string) back as the value it was logged as: an int, float,
    bool, None, or a JSON list or object; anything else stays text."""
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    if text == "None":
        return None
    if text in ("True", "False"):
        return text == "True"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def format_report(report: dict[str, Any]) -> str:
    """The report as text: a header, the leaderboard table, the out-of-memory line, the best."""
    metric = report["metric"]
    better = "higher" if report["direction"] == "max" else "lower"
    out = [f"study {report['study']} (space {report['space']}): {metric}, {better} is better"]
    if report["settings"]:
        out.append("  " + ", ".join(f"{k} {v}" for k, v in report["settings"].items()))
    out.append(
        f"{report['num_trials']} trials: {report['num_complete']} complete,"
        f" {report['num_pruned_oom']} pruned (out of memory), {report['num_failed']} failed"
    )
    out.append("")
    if report["leaderboard"]:
        out += _table(report["leaderboard"], metric)
    else:
        out.append("no complete trial yet")
    out.append("")
    oom = f"out of memory: {report['num_pruned_oom']} trials"
    if report["oom_stages"]:
        oom += " (" + ", ".join(f"{s} {n}" for s, n in report["oom_stages"].items()) + ")"
    out.append(oom)
    best = report["best"]
    if best is None:
        out.append("best: none (no trial completed)")
    else:
        out.append(
            f"best: {metric} {best['metric']:.4f} (trial {best['trial_id']})"
            f" with {json.dumps(best['config'], sort_keys=True)}"
        )
    return "\n".join(out)


def _table(rows: Sequence[dict[str, Any]], metric: str) -> list[str]:
    header = ("#", "trial", metric, "batch", "train", "eval", "factor", "eval x", "lr", "schedule")
    lines = []
    for row in rows:
        schedule = {
            key.removeprefix(_SCHEDULE_PREFIX): value
            for key, value in row.items()
            if key.startswith(_SCHEDULE_PREFIX) and key != "schedule_type"
        }
        details = ", ".join(f"{key}={value}" for key, value in schedule.items())
        kind = str(row.get("schedule_type", "-"))
        lines.append(
            (
                str(row["rank"]),
                str(row["trial_id"]),
                f"{row['metric']:.4f}",
                _cell(row.get("batch_size")),
                _cell(row.get("applied_train_batch_size")),
                _cell(row.get("eval_batch_size")),
                _cell(row.get("safety_factor"), "{:.2f}"),
                _cell(row.get("eval_multiplier"), "{:g}"),
                _cell(row.get("learning_rate"), "{:.2e}"),
                f"{kind}({details})" if details else kind,
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    return out


def _cell(value: Any, spec: str = "{}") -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return spec.format(value)
    return str(value)


def _check_tracking_uri(uri: str) -> None:
    """Fail fast on a store that is not there: MLflow would create an empty SQLite database,
    or retry an unreachable server for minutes."""
    database = sqlite_path(uri)
    if database is not None:
        if not database.is_file():
            raise UserError(
                f"no MLflow database at {database} (tracking URI {uri}); run a study first"
                " (python -m hpo.run) or point --mlflow-uri or --study-dir at one"
            )
    elif uri.startswith(("http://", "https://")):
        health = f"{uri.rstrip('/')}/health"
        try:
            with urllib.request.urlopen(health, timeout=_HEALTH_TIMEOUT_S):
                pass
        except urllib.error.HTTPError as err:
            # The server answered: a 4xx (e.g. it wants a login) is MLflow's to report.
            if err.code >= 500:
                raise UserError(
                    f"MLflow server {uri} is not healthy ({health} answered {err.code})"
                ) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise UserError(
                f"cannot reach the MLflow server at {uri} ({reason}); start it or pass another"
                " --mlflow-uri"
            ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hpo.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--space", required=True, help="the search space of the study")
    parser.add_argument(
        "--study", default=None, help="the study's name (default: the space's latest study)"
    )
    parser.add_argument(
        "--top", type=int, default=DEFAULT_TOP, help=f"trials in the leaderboard ({DEFAULT_TOP})"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--mlflow-uri",
        default=None,
        help="the MLflow tracking URI (default: sqlite:///<--study-dir>/mlflow.db)",
    )
    parser.add_argument(
        "--study-dir",
        type=Path,
        default=DEFAULT_STUDY_DIR,
        help=f"where studies live ({DEFAULT_STUDY_DIR}/)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    if args.top < 1:
        raise UserError(f"--top must be an integer >= 1, got {args.top}")
    uri = args.mlflow_uri or default_tracking_uri(args.study_dir)
    _check_tracking_uri(uri)
    from mlflow import MlflowClient

    report = build_report(MlflowClient(tracking_uri=uri), args.space, args.study, args.top)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
