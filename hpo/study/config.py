"""`StudyConfig`, everything a study depends on, and `StudyPaths`, where its files are."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config

from search_spaces.base import SearchSpace
from trainables.data.options import SOURCE_OPTIONS
from trainables.data.source import GraphSource
from trainables.errors import UserError, naming_keys, require_int

__all__ = [
    "EXPERIMENT_NAME",
    "SCHEDULERS",
    "Scheduler",
    "StudyConfig",
    "StudyPaths",
    "check_gpus_per_trial",
]

Scheduler = Literal["none", "asha"]
SCHEDULERS: tuple[Scheduler, ...] = ("none", "asha")
EXPERIMENT_NAME = "trials"  # the Ray Tune experiment's folder under `ray/`
# Where and how the driver runs: given to each run of it, not kept in study.json.
_UNSAVED = ("study_dir", "address", "dashboard_host")
# Kept in study.json since a later version: a file written before may lack them (their default
# says "not recorded").
_ADDED_LATER = ("smoke_test",)


def check_gpus_per_trial(gpus: float) -> None:
    """`--gpus-per-trial`: >= 0, and a whole number above 1 (a fraction of one GPU packs trials
    on it; Ray refuses a trial "GPU resource quantities >1" that are not whole numbers)."""
    if not (gpus >= 0 and math.isfinite(gpus)):
        raise UserError(f"--gpus-per-trial must be a number >= 0, got {gpus}")
    if gpus > 1 and not float(gpus).is_integer():
        raise UserError(
            f"--gpus-per-trial {gpus:g}: above 1 it must be a whole number of GPUs (a fraction"
            " of one GPU, such as 0.5, shares it between trials)"
        )


@dataclass(frozen=True)
class StudyPaths:
    """Where a study's files are, from its directory."""

    root: Path

    @property
    def settings(self) -> Path:
        return self.root / "study.json"

    @property
    def optuna_db(self) -> Path:
        return self.root / "optuna.db"

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{self.optuna_db.resolve()}"

    @property
    def ray_storage(self) -> Path:
        return self.root / "ray"

    @property
    def experiment(self) -> Path:
        return self.ray_storage / EXPERIMENT_NAME

    @property
    def runs(self) -> Path:
        """Each trial's run folders, `trial-<id>-<time>-<random>` (`hpo.trainable`)."""
        return self.root / "runs"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def lock(self) -> Path:
        """Held by the driver running the study (`hpo.study.run`): one driver per study."""
        return self.root / ".driver.lock"


# from_json: a key of study.json that is no field (of the space, the source, a range) is an error.
@with_config(ConfigDict(extra="forbid"))
@dataclass(frozen=True)
class StudyConfig:
    """Everything a study depends on (the CLI's options, resolved).

    Args:
        space: The search space, with the study's overrides applied (`--epochs`, smoke).
        study_dir: This study's directory (`<--study-dir>/<--study-name>`).
        source: Where the graphs come from (default synthetic traffic).
        num_samples: Trials in the study (default 8; the CLI's default is 6).
        max_concurrent: Trials running at once (default 2).
        memory_budget: Device-memory budget per trial in bytes; None: the default (CPU: the
            available memory over `max_concurrent`; CUDA: `gpus_per_trial` of the GPU).
        cpus_per_trial: CPUs Ray reserves per trial (default 1).
        gpus_per_trial: GPUs per trial; a fraction packs trials on one GPU (default 0).
        scheduler: `none` or `asha` (early stopping on the metric, per epoch).
        seed: The sampler's seed and every trial's data/model seed (default 0).
        address: A Ray cluster to join (`auto`, `ray://...`, `host:port`); None: a local one.
        tune_batch_size: Each trial runs the batch-size tuner (default); otherwise it trains at
            the searched batch size as it is.
        max_failures: Retries of a trial that fails with an error (not OOM); default 1.
        oom_feedback: Report OOM to the sampler as PRUNED (default). False is the baseline of
            `benchmarks/bench_oom_learning.py`: the trial raises, Ray's plain `OptunaSearch`
            marks it FAIL, and TPE ignores it.
        warm_start: Enqueue the adaptive store's recommended safety factor as the first trial.
        factor_store_path: The adaptive safety-factor store (default in the cache folder).
        n_startup_trials: Random trials before TPE models the results (default 5).
        points_to_evaluate: Configurations to try first (after the warm start), each a dict of
            some of the space's parameters; the sampler fills in the rest.
        mlflow_uri: The MLflow tracking store; None: `<study dir's parent>/mlflow.db`, one store
            for every study under the same root.
        dashboard_host: Where a local Ray instance serves its dashboard (default 127.0.0.1);
            None for no dashboard. Ignored when joining a cluster (`address`).
        smoke_test: Whether the study was started with `--smoke-test` (None: not recorded, a
            `study.json` written before it was); `--resume` compares it.
    """

    space: SearchSpace
    study_dir: Path
    source: GraphSource = field(default_factory=GraphSource)
    num_samples: int = 8
    max_concurrent: int = 2
    memory_budget: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    scheduler: Scheduler = "none"
    seed: int = 0
    address: str | None = None
    tune_batch_size: bool = True
    max_failures: int = 1
    oom_feedback: bool = True
    warm_start: bool = True
    factor_store_path: Path | None = None
    n_startup_trials: int = 5
    points_to_evaluate: tuple[dict[str, Any], ...] = ()
    mlflow_uri: str | None = None
    dashboard_host: str | None = "127.0.0.1"
    smoke_test: bool | None = None

    def __post_init__(self) -> None:
        for option, value, minimum in (
            ("--num-samples", self.num_samples, 1),
            ("--max-concurrent", self.max_concurrent, 1),
            ("--max-failures", self.max_failures, 0),
            ("--n-startup-trials", self.n_startup_trials, 0),
            ("--seed", self.seed, 0),  # NumPy's and Lightning's seeds are unsigned
        ):
            require_int(option, value, minimum=minimum)
        if not self.cpus_per_trial > 0:
            raise UserError(f"--cpus-per-trial must be > 0, got {self.cpus_per_trial}")
        check_gpus_per_trial(self.gpus_per_trial)
        if self.scheduler not in SCHEDULERS:
            raise UserError(
                f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}"
            )
        if self.memory_budget is not None and self.memory_budget <= 0:
            raise UserError(f"--memory-budget must be > 0, got {self.memory_budget}")

    def check_local_budget(self) -> None:
        """Trials that run on this machine's CPUs (no `--address`, no GPUs) must fit its
        memory: a `--memory-budget` past it is an error, and past it times `--max-concurrent`
        a warning (`check_cpu_budget`). Checked before a study is made or estimated."""
        if self.memory_budget is not None and self.address is None and not self.gpus_per_trial:
            from trainables.batching.budget import check_cpu_budget

            check_cpu_budget(self.memory_budget, concurrent=self.max_concurrent)

    @property
    def paths(self) -> StudyPaths:
        return StudyPaths(self.study_dir)

    @property
    def name(self) -> str:
        return self.study_dir.name

    @property
    def tracking_uri(self) -> str:
        from hpo.tracking import default_tracking_uri

        return self.mlflow_uri or default_tracking_uri(self.study_dir.parent)

    def to_json(self) -> dict[str, Any]:
        """The settings `study.json` keeps, to resume the study with (see `from_json`)."""
        space = dataclasses.asdict(self.space)
        return {
            "space": space,
            "source": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in dataclasses.asdict(self.source).items()
            },
            **{
                f.name: (
                    str(getattr(self, f.name))
                    if isinstance(getattr(self, f.name), Path)
                    else getattr(self, f.name)
                )
                for f in dataclasses.fields(self)
                if f.name not in ("space", "source", *_UNSAVED)
            },
        }

    @classmethod
    def from_json(
        cls, saved: Mapping[str, Any], *, study_dir: Path, **changes: Any
    ) -> StudyConfig:
        """The config a study was started with, from its `study.json` (see `to_json`).

        Args:
            saved: The file's object, as `json.loads` reads it.
            study_dir: The study's directory.
            **changes: Fields the file does not keep (`address`, `dashboard_host`) or that a
                resumed study may change (`factor_store_path`).

        Raises:
            UserError: A key missing, unknown, of the wrong type or of a value its check
                refuses, named by its path in the file (`num_samples`, `source.window`,
                `space.batch_size.low`), not by the option that sets it; the caller names the
                file.
        """
        _check_keys(saved)
        try:
            # Strict JSON: "8" is not the integer 8, nor "no" the boolean false.
            config = TypeAdapter(cls).validate_json(
                json.dumps({**saved, "study_dir": str(study_dir)}), strict=True
            )
        except ValidationError as err:
            raise UserError(_describe(err)) from None
        except UserError as err:
            raise UserError(naming_keys(str(err), _saved_keys(saved))) from None
        return dataclasses.replace(config, **changes)


def _check_keys(saved: Mapping[str, Any]) -> None:
    """Every key `to_json` writes is in `saved` (a study resumes with the settings it started
    with, not a default where the file lacks one), and none that it leaves out."""
    missing = [
        f.name
        for f in dataclasses.fields(StudyConfig)
        if f.name not in saved and f.name not in (*_UNSAVED, *_ADDED_LATER)
    ]
    for key, kind in (("space", SearchSpace), ("source", GraphSource)):
        if isinstance(saved.get(key), Mapping):
            missing += [
                f"{key}.{f.name}" for f in dataclasses.fields(kind) if f.name not in saved[key]
            ]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise UserError(f"missing key{'s' * (len(missing) > 1)} {', '.join(missing[:3])}{more}")
    for key in _UNSAVED:
        if key in saved:
            raise UserError(f"{key} is not a setting of a study (each run of hpo.run sets it)")


def _describe(err: ValidationError) -> str:
    """What pydantic found wrong in a study's settings, each named by its key."""
    problems = []
    for error in err.errors():
        key = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        )
        key = key.removeprefix(".")
        if error["type"] == "unexpected_keyword_argument":
            problems.append(f"{key} is not a setting of a study")
        elif error["type"] == "missing":
            problems.append(f"{key} is missing")
        else:
            problems.append(f"{key}: {error['msg']} (got {error['input']!r})")
    return "; ".join(problems)


def _saved_keys(saved: Mapping[str, Any]) -> dict[str, str]:
    """What the checks of a study's settings name -> the key of `study.json` that holds it."""
    space = saved.get("space")
    space_name = space.get("name") if isinstance(space, Mapping) else None
    return {
        # A study setting's option is its name, dashed: --num-samples, --seed.
        **{
            f"--{f.name.replace('_', '-')}": f.name
            for f in dataclasses.fields(StudyConfig)
            if f.name not in ("space", "source", *_UNSAVED)
        },
        **{option: f"source.{field}" for option, field in SOURCE_OPTIONS.items()},
        # `validate_space` names the space's fields "search space 'NAME': field KEY".
        **{
            f"search space {space_name!r}: field {f.name}": f"space.{f.name}"
            for f in dataclasses.fields(SearchSpace)
        },
    }
