"""`build_report`: a study's trials read back from MLflow, as one JSON-ready report."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hpo.states import ENDED_STATES
from trainables.errors import UserError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = ["DEFAULT_TOP", "EXPERIMENT_PREFIX", "SCHEDULE_PREFIX", "build_report"]

DEFAULT_TOP = 5
EXPERIMENT_PREFIX = "hpo-"
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
SCHEDULE_PREFIX = "schedule_"
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
        raise _no_studies(client, space)
    parents = _search_all(
        client,
        experiment.experiment_id,
        "tags.`hpo.role` = 'study'",
        order_by=["attributes.start_time DESC"],
    )
    if not parents:
        raise _no_studies(client, space)
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
        # Every trial, as in summary.json: the counts by state add up to it, one still running
        # or cut off by a stopped driver (run again by --resume) in `num_interrupted`.
        "num_trials": len(trials),
        "num_complete": sum(row["state"] == "complete" for row in trials),
        "num_pruned_oom": len(oom),
        "num_stopped_early": sum(row["state"] == "stopped-early" for row in trials),
        "num_failed": sum(row["state"] == "failed" for row in trials),
        "num_interrupted": sum(row["state"] not in ENDED_STATES for row in trials),
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
        if key.startswith(SCHEDULE_PREFIX) and key != "schedule_type"
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


def _no_studies(client: MlflowClient, space: str) -> UserError:
    """No study of `space` in the store: the error names the spaces it has studies of (a
    mistyped `--space knd` said only that there were none)."""
    others = sorted(
        experiment.name.removeprefix(EXPERIMENT_PREFIX)
        for experiment in client.search_experiments()
        if experiment.name.startswith(EXPERIMENT_PREFIX)
        and experiment.name != f"{EXPERIMENT_PREFIX}{space}"
    )
    held = f"; it holds studies of space {', '.join(others)}" if others else ""
    return UserError(f"no studies of space {space!r} in {client.tracking_uri}{held}")
