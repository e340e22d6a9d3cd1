"""`run_study(config)`: one HPO study on Ray Tune with an OOM-aware Optuna sampler.

A study directory holds everything of one study:

- `study.json`: the study's settings (a resumed study runs with them);
- `optuna.db`: the Optuna study (SQLite), the sampler's memory across interruptions;
- `ray/trials/`: the Ray Tune experiment (`Tuner.restore` resumes it);
- `prerequisites/`, `runs/<trial>/`: the models trained once for the study, each trial's run
  (`model.pt`, `config.json`, `metrics.json`, `train.log`), never overwritten;
- `batch_size_frontier.json`: the tuned maxima, shared by the trials;
- `summary.json`: the trials and the best configuration (see `hpo.summary`).

The driver prepares the data and the prerequisite models once, starts (or joins) Ray, and runs
`hpo.trainable.train_trial` for each trial under a `ConcurrencyLimiter`, with optional ASHA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from search_spaces.base import SearchSpace
from trainables.data.source import GraphSource
from trainables.errors import UserError

__all__ = ["SCHEDULERS", "StudyConfig", "StudyPaths", "run_study"]

logger = logging.getLogger("hpo.run")

Scheduler = Literal["none", "asha"]
SCHEDULERS: tuple[Scheduler, ...] = ("none", "asha")
_EXPERIMENT = "trials"


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
        return self.ray_storage / _EXPERIMENT

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


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

    def __post_init__(self) -> None:
        for option, value, minimum in (
            ("--num-samples", self.num_samples, 1),
            ("--max-concurrent", self.max_concurrent, 1),
            ("--max-failures", self.max_failures, 0),
            ("--n-startup-trials", self.n_startup_trials, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise UserError(f"{option} must be an integer >= {minimum}, got {value!r}")
        if not self.cpus_per_trial > 0:
            raise UserError(f"--cpus-per-trial must be > 0, got {self.cpus_per_trial}")
        if not self.gpus_per_trial >= 0:
            raise UserError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial}")
        if self.scheduler not in SCHEDULERS:
            raise UserError(
                f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}"
            )
        if self.memory_budget is not None and self.memory_budget <= 0:
            raise UserError(f"--memory-budget must be > 0, got {self.memory_budget}")

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
                if f.name not in ("space", "source", "study_dir", "address", "dashboard_host")
            },
        }

    @classmethod
    def from_json(cls, saved: dict[str, Any], *, study_dir: Path, **changes: Any) -> StudyConfig:
        """The config a study was started with, from its `study.json` (see `to_json`)."""
        from search_spaces.ranges import FloatRange, IntRange

        def ranged(value: Any) -> Any:
            if isinstance(value, dict) and set(value) >= {"low", "high"}:
                kind = FloatRange if isinstance(value["low"], float) else IntRange
                return kind(**value)
            return value

        space_fields = {k: ranged(v) for k, v in saved["space"].items()}
        space_fields["schedule_type"] = tuple(space_fields["schedule_type"])
        source = dict(saved["source"])
        for key in ("data_dir", "cache_dir"):
            source[key] = None if source[key] is None else Path(source[key])
        values = {k: v for k, v in saved.items() if k not in ("space", "source")}
        values["points_to_evaluate"] = tuple(values.get("points_to_evaluate", ()))
        if values.get("factor_store_path") is not None:
            values["factor_store_path"] = Path(values["factor_store_path"])
        return cls(
            space=SearchSpace(**space_fields),
            source=GraphSource(**source),
            study_dir=study_dir,
            **{**values, **changes},
        )


def run_study(config: StudyConfig, *, resume: bool = False) -> dict[str, Any]:
    """Run (or resume) the study; return its summary (also written to `summary.json`).

    Raises:
        UserError: Bad settings, a study directory that exists without `resume`, or nothing to
            resume.
    """
    import ray

    # Ray's newer console output prints a table per experiment even at verbose=0; the legacy
    # reporter is silent at 0.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # An OOM trial without an earlier value reports the worst value (-inf) on purpose; Ray's
    # TensorBoard logger warns about each one.
    logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
    config = _with_absolute_paths(config)
    paths = config.paths
    from hpo.prepare import prepare_data, prepare_prerequisites
    from hpo.tracking import StudyTracker, check_tracking_uri

    if not resume:
        _check_new(config)
    check_tracking_uri(config.tracking_uri)
    # Data and resources first: a bad --data-dir or --gpus-per-trial is an error before the
    # study directory exists.
    prepare_data(config.source, seed=config.seed)
    started_ray = False
    if not ray.is_initialized():
        from hpo.monitoring import init_ray

        init_ray(config.address, dashboard_host=config.dashboard_host)
        started_ray = True
    try:
        _check_resources(config)
        _claim(config, resume=resume)
        StudyTracker(config.tracking_uri, config, resume=resume)  # the study's parent run
        prerequisites = prepare_prerequisites(
            config.space, config.source, config.study_dir, seed=config.seed
        )
        tuner = _tuner(config, prerequisites, resume=resume)
        logger.info(
            "study %s: %d trials of space %s, %d at a time (%s); Ray experiment %s",
            config.name,
            config.num_samples,
            config.space.name,
            config.max_concurrent,
            "resumed" if resume else "new",
            paths.experiment,
        )
        # Ray Tune's console reporter prints tables on stdout, whatever `verbose` says; the
        # study logs its own lines (hpo.callbacks) and keeps stdout for the table or --json.
        with contextlib.redirect_stdout(sys.stderr):
            results = tuner.fit()
    finally:
        if started_ray:
            ray.shutdown()
    from hpo.summary import fail_orphaned_trials, summarise, write_summary

    summary = summarise(config, results)
    complete = summary["num_trials"] >= config.num_samples
    if complete:
        fail_orphaned_trials(config)
    tracker = StudyTracker(config.tracking_uri, config, resume=True)
    summary["mlflow"] = {
        "tracking_uri": config.tracking_uri,
        "experiment": tracker.experiment_name,
        "parent_run_id": tracker.parent_id,
        "registered_model": None,
    }
    registered = tracker.finish(summary, complete=complete)
    summary["mlflow"]["registered_model"] = registered
    write_summary(paths.summary, summary)
    return summary


def _claim(config: StudyConfig, *, resume: bool) -> None:
    """Create the study directory (new study) or check there is one to resume."""
    paths = config.paths
    if resume:
        if not paths.settings.is_file():
            raise UserError(f"--resume: {config.study_dir} holds no study (no study.json)")
        return
    _check_new(config)
    paths.root.mkdir(parents=True, exist_ok=True)
    tmp = paths.settings.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(config.to_json(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, paths.settings)


def _check_new(config: StudyConfig) -> None:
    root = config.paths.root
    if root.exists() and any(root.iterdir()):
        raise UserError(
            f"--study-name {config.name}: {config.study_dir} already holds a study; pass --resume"
            " to continue it, or another --study-name"
        )


def _check_resources(config: StudyConfig) -> None:
    import ray

    cluster = ray.cluster_resources()
    for name, need in (("CPU", config.cpus_per_trial), ("GPU", config.gpus_per_trial)):
        have = cluster.get(name, 0.0)
        if need > have:
            option = f"--{name.lower()}s-per-trial"
            raise UserError(
                f"{option} {need:g}: the Ray cluster has {have:g} {name}s in all, so no trial"
                f" could ever start; lower {option}"
            )


def _with_absolute_paths(config: StudyConfig) -> StudyConfig:
    """`config` with every path made absolute: Ray's workers run in their own working directory,
    so a relative `--study-dir` or `--data-dir` would name nothing there."""

    def absolute(path: Path | None) -> Path | None:
        return None if path is None else Path(path).resolve()

    source = dataclasses.replace(
        config.source,
        data_dir=absolute(config.source.data_dir),
        cache_dir=absolute(config.source.cache_dir),
    )
    return dataclasses.replace(
        config,
        study_dir=Path(config.study_dir).resolve(),
        source=source,
        factor_store_path=absolute(config.factor_store_path),
    )


def _default_budget(config: StudyConfig) -> int | None:
    """A local CPU study's default budget per trial, fixed once for all its trials.

    Computed in each trial instead, the available memory a trial sees depends on what the
    trials beside it hold at that moment, so trials would get different budgets, different
    frontier-memo keys, and run the tuner again. On a cluster, or on GPUs, each trial's node
    decides.
    """
    if config.memory_budget is not None or config.address is not None or config.gpus_per_trial:
        return None
    import torch

    from trainables.batching import default_budget_bytes, format_size

    budget = default_budget_bytes(torch.device("cpu"), num_concurrent_trials=config.max_concurrent)
    logger.info(
        "memory budget: %s per trial (available memory / %d concurrent trials)",
        format_size(budget),
        config.max_concurrent,
    )
    return budget


def _tuner(config: StudyConfig, prerequisites: Any, *, resume: bool) -> Any:
    from ray import tune

    from hpo.trainable import TrialContext, train_trial

    context = TrialContext(
        space=config.space,
        source=config.source,
        seed=config.seed,
        study_dir=config.study_dir.resolve(),
        tune_batch_size=config.tune_batch_size,
        memory_budget=config.memory_budget,
        default_budget=_default_budget(config),
        gpus_per_trial=config.gpus_per_trial,
        num_concurrent_trials=config.max_concurrent,
        factor_store_path=_factor_store_path(config),
        teacher=prerequisites.teacher,
        vgae=prerequisites.vgae,
        gat=prerequisites.gat,
        oom_as_error=not config.oom_feedback,
    )
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, context=context),
        {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial},
    )
    paths = config.paths
    if resume and tune.Tuner.can_restore(str(paths.experiment.resolve())):
        return tune.Tuner.restore(
            str(paths.experiment.resolve()), trainable, resume_unfinished=True
        )
    if resume:
        logger.info("study %s: no Ray experiment saved yet; starting its trials", config.name)
    from hpo.callbacks import StudyProgress
    from hpo.monitoring import StudyMetrics
    from hpo.tracking import MlflowTrialLogger

    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=_searcher(config),
            scheduler=_scheduler(config),
            num_samples=config.num_samples,
            # A local study reuses its workers (no torch import per trial). On a cluster a
            # worker can die with its node; Ray would then retry trials on the dead, cached
            # actor, so every trial gets a fresh one there.
            reuse_actors=config.address is None,
        ),
        run_config=tune.RunConfig(
            name=_EXPERIMENT,
            storage_path=str(paths.ray_storage.resolve()),
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            callbacks=[
                StudyProgress(config.space.metric, config.space.epochs),
                MlflowTrialLogger(config.tracking_uri, config),
                StudyMetrics(config.name),
            ],
            verbose=0,
            log_to_file=True,
        ),
    )


def _factor_store_path(config: StudyConfig) -> Path:
    from trainables.data.cache import default_cache_dir

    return (config.factor_store_path or default_cache_dir() / "safety_factors.json").resolve()


def _searcher(config: StudyConfig) -> Any:
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from hpo.searcher import OOMAwareOptunaSearch

    space = config.space
    storage = optuna.storages.RDBStorage(
        config.paths.optuna_url, engine_kwargs={"connect_args": {"timeout": 60}}
    )
    sampler = optuna.samplers.TPESampler(
        seed=config.seed, n_startup_trials=config.n_startup_trials
    )
    warm = _warm_start(config)
    searcher_type = OOMAwareOptunaSearch if config.oom_feedback else OptunaSearch
    searcher = searcher_type(
        space=space.suggest,
        metric=space.metric,
        mode=space.direction,
        sampler=sampler,
        storage=storage,
        study_name=config.name,
        points_to_evaluate=[*([warm] if warm else []), *config.points_to_evaluate] or None,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=config.max_concurrent)


def _warm_start(config: StudyConfig) -> dict[str, Any] | None:
    """The first trial: the adaptive store's recommended factor, when it has records."""
    if not (config.warm_start and config.tune_batch_size):
        return None
    from trainables.batching.adaptive_factor import SafetyFactorKey, SafetyFactorStore

    space = config.space
    store = SafetyFactorStore(_factor_store_path(config))
    key = SafetyFactorKey(
        dataset=config.source.dataset_name,
        mode=space.mode,
        model_size=space.size,
        device_type="cuda" if config.gpus_per_trial > 0 else "cpu",
        budget_bytes=config.memory_budget or 0,
    )
    if store.num_records(key) == 0:
        return None
    bounds = space.safety_factor
    factor = min(max(store.recommend(key, default=bounds.high), bounds.low), bounds.high)
    logger.info(
        "warm start: first trial with safety factor %.3f, recommended by %s from %d runs",
        factor,
        store.path,
        store.num_records(key),
    )
    return space.warm_start_params(factor)


def _scheduler(config: StudyConfig) -> Any:
    if config.scheduler == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    # One more than the epochs: a trial's last report (after testing) is never cut off.
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=config.space.metric,
        mode=config.space.direction,
        max_t=config.space.epochs + 1,
        grace_period=1,
        reduction_factor=2,
    )
