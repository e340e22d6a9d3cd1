"""`python -m hpo.run --space NAME`: an HPO study of batch-size settings on Ray Tune + Optuna.

With no other option it runs the embedded default: synthetic CAN traffic, a local Ray instance,
6 trials of the space's 5 epochs, 2 at a time (under 10 minutes on 2 CPU cores). Each trial runs
the tuner-plus-factor trainer; a trial that runs out of memory is pruned in the Optuna study, not
a crash. At the end it prints a table of trials, the best configuration and where the results are
(`<study dir>/summary.json`, the MLflow store).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from trainables.cli import configure_logging, run_cli, tool_command
from trainables.errors import UserError, require_int

if TYPE_CHECKING:
    from hpo.study import StudyConfig
    from trainables.data.source import GraphSource

logger = logging.getLogger("hpo.run")

DEFAULT_NUM_SAMPLES = 6
SMOKE_NUM_SAMPLES = 4
SMOKE_NUM_MESSAGES = 30_000
DEFAULT_STUDY_DIR = Path("studies")


def add_set_argument(group: argparse._ActionsContainer) -> None:
    """`--set KEY=VALUE` (repeatable, into `args.set`; `search_spaces.overrides` reads it), as
    hpo.run and hpo.estimate take it. Defined here, not there: a parser imports no torch."""
    group.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one of the space's ranges or its model size, e.g. --set batch_size=16..1024,"
        " --set learning_rate=1e-4..1e-3:log, --set schedule_type=none,step, --set size=student"
        " (repeat it for several)",
    )


def build_parser() -> argparse.ArgumentParser:
    from search_spaces.registry import SPACE_NAMES
    from trainables.data.options import add_source_arguments

    parser = argparse.ArgumentParser(
        prog="python -m hpo.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--space", required=True, help=f"one of {', '.join(SPACE_NAMES)}")
    study = parser.add_argument_group("study")
    study.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help=f"trials in the study ({DEFAULT_NUM_SAMPLES}; {SMOKE_NUM_SAMPLES} with --smoke-test)",
    )
    study.add_argument("--max-concurrent", type=int, default=2, help="trials at once (2)")
    study.add_argument("--epochs", type=int, default=None, help="epochs per trial (the space's)")
    add_set_argument(study)
    study.add_argument(
        "--memory-budget",
        default=None,
        help="device memory per trial, e.g. 4GiB (default: CPU: available memory / "
        "--max-concurrent; GPU: --gpus-per-trial of the GPU)",
    )
    study.add_argument("--cpus-per-trial", type=float, default=1.0, help="(1)")
    study.add_argument("--gpus-per-trial", type=float, default=0.0, help="(0)")
    study.add_argument("--scheduler", choices=("none", "asha"), default="none")
    study.add_argument("--seed", type=int, default=0, help="sampler and training seed (0)")
    study.add_argument(
        "--max-failures", type=int, default=1, help="retries of a trial that errors (1)"
    )
    study.add_argument(
        "--tune-batch-size",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the batch-size tuner in each trial (default); --no-tune-batch-size trains at"
        " the searched batch size as it is",
    )
    study.add_argument(
        "--study-dir",
        type=Path,
        default=DEFAULT_STUDY_DIR,
        help=f"where studies live ({DEFAULT_STUDY_DIR}/)",
    )
    study.add_argument(
        "--study-name",
        default=None,
        help="the study's folder under --study-dir (default <space>-<UTC time>; with --resume,"
        " the latest study of the space)",
    )
    study.add_argument("--resume", action="store_true", help="continue an interrupted study")
    study.add_argument(
        "--address", default=None, help="Ray cluster to join, e.g. auto (default: local Ray)"
    )
    study.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        help="where a local Ray instance serves its dashboard (127.0.0.1); another address"
        " exposes the cluster",
    )
    study.add_argument(
        "--no-dashboard", action="store_true", help="start a local Ray without the dashboard"
    )
    study.add_argument(
        "--smoke-test",
        action="store_true",
        help=f"tiny data, 2 epochs, {SMOKE_NUM_SAMPLES} trials: checks the set-up in minutes",
    )
    study.add_argument(
        "--mlflow-uri",
        default=None,
        help="MLflow tracking store: sqlite:///PATH, http://HOST:PORT, ... (default"
        " sqlite:///<study-dir>/mlflow.db, one store for every study there)",
    )
    study.add_argument(
        "--factor-store",
        type=Path,
        default=None,
        help="adaptive safety-factor store that seeds the study's first trial and that tuned"
        " trials update (default $BATCH_HPO_CACHE or ~/.cache/batch-hpo, safety_factors.json)",
    )
    study.add_argument("--json", action="store_true", help="print summary.json on stdout")
    add_source_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    from trainables.data.options import check_source_arguments

    check_source_arguments(args)  # before the study is looked for or made
    study_dir = _study_dir(args)
    if args.resume:
        config = _resumed_config(study_dir, args)
        _check_resume_options(config, study_dir, args, _given_options(argv))
    else:
        config = _new_config(study_dir, args)
    if config.tune_batch_size:
        from hpo.study.tuner import factor_store_path
        from trainables.batching.adaptive_factor import SafetyFactorStore

        # Trials read and update it: a damaged store stops the study before anything is made.
        SafetyFactorStore(factor_store_path(config)).entries()
    from hpo.study import run_study

    summary = run_study(config, resume=args.resume)
    from hpo.summary import format_table

    if args.json:
        import json

        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(format_table(summary))
    from hpo.tracking import ui_command

    # On stderr with --json, so stdout stays one JSON object.
    print(f"browse it: {ui_command(config.tracking_uri)}", file=sys.stderr if args.json else None)
    from hpo.states import num_ended

    if num_ended(summary) < config.num_samples:
        logger.warning(
            "study %s stopped after %d of %d trials; continue it with: %s -m hpo.run"
            " --space %s --study-dir %s --study-name %s --resume",
            config.name,
            num_ended(summary),
            config.num_samples,
            tool_command("python"),
            config.space.name,
            study_dir.parent,
            config.name,
        )
        return 130
    return 0


def _study_dir(args: argparse.Namespace) -> Path:
    root: Path = args.study_dir
    for folder in (root, *root.parents):
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--study-dir {root}: {folder} is a file, not a folder")
    if args.study_name is not None:
        # It names a folder, an Optuna study, MLflow runs and Ray metric tags (ASCII only).
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", args.study_name):
            raise UserError(
                "--study-name must be a plain folder name of ASCII letters, digits and . _ + -"
                f" (starting with a letter or digit), got {args.study_name!r}"
            )
        return root / args.study_name
    if args.resume:
        # Any study of the space, named by `--study-name` or not (as `hpo.report` finds it).
        candidates = sorted(
            (p for p in root.glob("*/study.json") if _space_of(p) == args.space),
            key=lambda p: p.parent.stat().st_mtime,
        )
        if not candidates:
            raise UserError(
                f"--resume: no study of space {args.space!r} under {root}; name one with"
                " --study-name"
            )
        return candidates[-1].parent
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return root / f"{args.space}-{stamp}"


def _space_of(study_json: Path) -> str | None:
    """The space a study's `study.json` names; None where it cannot be read."""
    try:
        space = json.loads(study_json.read_text()).get("space", {})
        return space.get("name") if isinstance(space, dict) else None
    except (OSError, ValueError, AttributeError):
        return None


def _new_config(study_dir: Path, args: argparse.Namespace) -> StudyConfig:
    from hpo.study import StudyConfig
    from search_spaces.overrides import apply_overrides
    from search_spaces.registry import get_space
    from trainables.batching.sizes import parse_memory_size
    from trainables.data.cache import default_cache_dir
    from trainables.data.options import source_from_args

    space = get_space(args.space)
    if args.smoke_test:
        space = space.smoke()
        if args.data_dir is None and args.num_messages is None:
            args.num_messages = SMOKE_NUM_MESSAGES
    if args.epochs is not None:
        space = space.with_overrides(epochs=require_int("--epochs", args.epochs, minimum=1))
    space = apply_overrides(space, args.set)
    source = source_from_args(args)
    if source.cache_dir is None and source.use_cache:
        source = _with_cache_dir(source, default_cache_dir())
    space = space.with_overrides(dataset=source.dataset_name, window=source.window)
    num_samples = args.num_samples
    if num_samples is None:
        num_samples = SMOKE_NUM_SAMPLES if args.smoke_test else DEFAULT_NUM_SAMPLES
    budget = (
        None
        if args.memory_budget is None
        else parse_memory_size(args.memory_budget, option="--memory-budget")
    )
    config = StudyConfig(
        space=space,
        study_dir=study_dir,
        source=source,
        num_samples=num_samples,
        max_concurrent=args.max_concurrent,
        memory_budget=budget,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        scheduler=args.scheduler,
        seed=args.seed,
        address=args.address,
        tune_batch_size=args.tune_batch_size,
        max_failures=args.max_failures,
        mlflow_uri=args.mlflow_uri,
        dashboard_host=None if args.no_dashboard else args.dashboard_host,
        factor_store_path=args.factor_store,
        smoke_test=args.smoke_test,
    )
    config.check_local_budget()
    from hpo.study.tuner import factor_store_path

    # Resolved now (given or default), so that --resume and every worker use this store.
    return dataclasses.replace(config, factor_store_path=factor_store_path(config))


def _resumed_config(study_dir: Path, args: argparse.Namespace) -> StudyConfig:
    import json

    from hpo.study import StudyConfig

    settings = study_dir / "study.json"
    try:
        saved = json.loads(settings.read_text())
    except OSError:
        raise UserError(f"--resume: {study_dir} holds no study (no study.json)") from None
    except ValueError as err:
        raise UserError(f"--resume: {settings} is not a study's settings ({err})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("space"), dict):
        raise UserError(f"--resume: {settings} is not a study's settings (no space object)")
    if saved["space"].get("name") != args.space:
        raise UserError(
            f"--resume: {study_dir} is a study of space {saved['space'].get('name')!r},"
            f" not {args.space!r}"
        )
    logger.info("resuming study %s with its saved settings (%s)", study_dir.name, settings)
    changes = {
        "address": args.address,
        "dashboard_host": None if args.no_dashboard else args.dashboard_host,
    }
    if args.factor_store is not None:
        changes["factor_store_path"] = args.factor_store.resolve()
    try:
        config = StudyConfig.from_json(saved, study_dir=study_dir, **changes)
    except UserError as err:
        # It names the file's key that holds the value (not the option that sets it).
        raise UserError(
            f"--resume: {settings}: {err}; fix the file, or start a new study"
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        problem = f"no {err}" if isinstance(err, KeyError) else str(err).splitlines()[0]
        raise UserError(f"--resume: {settings} is not a study's settings ({problem})") from None
    # Where graphs are cached is not a study setting: the same graphs, read or built.
    if args.cache_dir is not None:
        config = dataclasses.replace(config, source=_with_cache_dir(config.source, args.cache_dir))
    if args.no_cache:
        config = dataclasses.replace(
            config, source=dataclasses.replace(config.source, use_cache=False)
        )
    return config


# What `--resume` may change: where and how the driver runs and is watched, and which factor
# store it reads. Every other option is one of the study's settings, kept in study.json.
_RESUME_OPTIONS = frozenset(
    {"space", "study_dir", "study_name", "resume", "address", "dashboard_host", "no_dashboard"}
    | {"mlflow_uri", "factor_store", "json", "cache_dir", "no_cache"}
)


def _given_options(argv: Sequence[str] | None) -> set[str]:
    """The options the command line names (their `dest`), defaults left out."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def _check_resume_options(
    config: StudyConfig, study_dir: Path, args: argparse.Namespace, given: set[str]
) -> None:
    """A study resumes with the settings it started with: an option given with `--resume` that
    says otherwise is an error (it used to be dropped silently), one that says the same is
    accepted (a requeued SLURM job passes its whole command line again).

    Raises:
        UserError: Options that differ from the study's, each with the study's value; or an
            `--mlflow-uri` other than the study's store.
    """
    if args.mlflow_uri is not None and not _same_store(config.tracking_uri, args.mlflow_uri):
        # Ray restores the study's MLflow callback as it was: trials would log to the old store,
        # the study's summary and registered model to the new one.
        raise UserError(
            f"--mlflow-uri {args.mlflow_uri}: study {config.name} is tracked in"
            f" {config.tracking_uri}; a resumed study keeps its store (its trials' runs are"
            " there), so leave the option out"
        )
    settings = sorted(given - _RESUME_OPTIONS)
    if not settings:
        return
    fresh = _new_config(study_dir, args)  # the study these options alone would start
    if config.smoke_test is None:  # compare what --smoke-test does to the space, as it can
        fresh = dataclasses.replace(fresh, smoke_test=None)
    differ = [
        f"--{dest.replace('_', '-')}: "
        + (
            "the study was not started with it"
            if dest == "smoke_test"
            else f"{_setting(fresh, dest)} (the study's: {_setting(config, dest)})"
        )
        for dest in settings
        if dest != "set" and _setting(fresh, dest) != _setting(config, dest)
    ]
    if "set" in settings:  # the fields its items name, one by one
        from search_spaces.overrides import parse_override

        for item in args.set:
            key = parse_override(item, fresh.space)[0]
            ours, theirs = getattr(fresh.space, key), getattr(config.space, key)
            if ours != theirs:
                differ.append(f"--set {item}: {ours} (the study's: {theirs})")
    if differ:
        raise UserError(
            f"--resume continues study {config.name} with the settings it started with"
            f" ({config.paths.settings}); these options say otherwise: {'; '.join(differ)}."
            " Leave them out, or start a new study with another --study-name"
        )


# The study's settings an option sets: these StudyConfig fields, and GraphSource fields
# (`trainables.data.options.SOURCE_OPTIONS`).
_STUDY_FIELDS = frozenset(
    {"num_samples", "max_concurrent", "memory_budget", "cpus_per_trial", "gpus_per_trial"}
    | {"scheduler", "seed", "max_failures", "tune_batch_size"}
)


def _setting(config: StudyConfig, dest: str) -> object:
    """The value of the study setting that the option `dest` sets, comparable across configs."""
    if dest in _STUDY_FIELDS:
        return getattr(config, dest)
    if dest == "epochs":
        return config.space.epochs
    if dest == "set":  # compared item by item in `_check_resume_options`
        from search_spaces.overrides import SETTABLE_KEYS

        return {key: getattr(config.space, key) for key in SETTABLE_KEYS}
    if dest == "smoke_test":
        if config.smoke_test is not None:
            return config.smoke_test
        # A study.json from before it was recorded: what --smoke-test does to a space besides
        # its epochs (compared on their own).
        space = config.space
        return space.batch_size, space.schedule_max_batch_size, space.schedule_final_batch_size
    from trainables.data.options import SOURCE_OPTIONS

    value = getattr(config.source, SOURCE_OPTIONS["--" + dest.replace("_", "-")])
    return Path(value).resolve() if isinstance(value, Path) else value


def _same_store(a: str, b: str) -> bool:
    from hpo.tracking.store import sqlite_path

    file_a, file_b = sqlite_path(a), sqlite_path(b)
    if file_a is not None and file_b is not None:
        return file_a.resolve() == file_b.resolve()
    return a.rstrip("/") == b.rstrip("/")


def _with_cache_dir(source: GraphSource, cache_dir: Path) -> GraphSource:
    import dataclasses

    return dataclasses.replace(source, cache_dir=cache_dir.resolve())


if __name__ == "__main__":
    sys.exit(run_cli(main))
