"""`python -m hpo.report --space NAME`: a study's leaderboard, read back from MLflow.

Prints the best complete trials of a study (by the study's metric, in its direction) with their
batch settings, how many trials ran out of memory and where, and the best configuration. The
study is the most recent one of the space unless `--study` names one; `--json` prints the report
as one JSON object: `space`, `study`, `metric`, `direction`, `settings`, `num_trials` (every
trial: the counts by state add up to it), `num_complete`, `num_pruned_oom`, `num_stopped_early`,
`num_failed`, `num_interrupted` (still running, or cut off by a stopped driver), `oom_stages`
(stage -> count),
`best` (`trial_id`, `config`, `metric`; null when no trial completed) and `leaderboard`.

It reads the MLflow layout a study writes: experiment `hpo-<space>`, one parent run per study
(tags `hpo.role=study`, `hpo.study`, `hpo.metric`, `hpo.direction`) and under it one child run
per trial (tags `hpo.role=trial`, `hpo.trial_id`, `state`, `oom`, `oom_stage`; the trial's
config and applied batch sizes as params; the metric's last value as a metric).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from hpo.report.build import DEFAULT_TOP, build_report
from hpo.report.text import format_report
from hpo.tracking.store import check_server, default_tracking_uri, sqlite_path
from trainables.cli import configure_logging
from trainables.errors import UserError, require_int

__all__ = ["build_parser", "main"]

# hpo.run's default; not imported, so that `--help` and the errors before MLflow stay fast.
DEFAULT_STUDY_DIR = Path("studies")


_SQLITE_HEADER = b"SQLite format 3\x00"


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
        with database.open("rb") as f:
            if f.read(16) != _SQLITE_HEADER:
                raise UserError(f"{database} is not an SQLite database (tracking URI {uri})")
    elif uri.startswith(("http://", "https://")):
        check_server(uri, hint="start it or pass another --mlflow-uri", timeout_s=3.0)


def build_parser() -> argparse.ArgumentParser:
    """The `python -m hpo.report` command line."""
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
    """Print the report (`--json`: as JSON); a missing or unreachable store is a `UserError`."""
    args = build_parser().parse_args(argv)
    configure_logging()
    require_int("--top", args.top, minimum=1)
    uri = args.mlflow_uri or default_tracking_uri(args.study_dir)
    _check_tracking_uri(uri)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import DatabaseError

    try:
        report = build_report(MlflowClient(tracking_uri=uri), args.space, args.study, args.top)
    except MlflowException as err:  # e.g. a URI scheme MLflow has no store for
        first = (str(err.message).strip().splitlines() or [type(err).__name__])[0][:300]
        raise UserError(f"MLflow store {uri}: {first}") from None
    except DatabaseError as err:  # e.g. "database disk image is malformed"
        first = (str(err.orig).strip().splitlines() or [type(err).__name__])[0][:300]
        raise UserError(f"MLflow store {uri} cannot be read: {first}") from None
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0
