"""The Ray Tune `Tuner` of a study: the trainable and its context, the OOM-aware Optuna searcher
(with its warm start), the scheduler, and the callbacks that report to the log, MLflow and the
dashboard."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hpo.study.config import EXPERIMENT_NAME, StudyConfig

__all__ = ["default_budget", "factor_store_path", "ray_tuner", "warm_start_key"]

logger = logging.getLogger("hpo.run")


def default_budget(config: StudyConfig) -> int | None:
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


def ray_tuner(
    config: StudyConfig, prerequisites: Any, *, resume: bool, budget: int | None = None
) -> Any:
    """The study's Ray Tune `Tuner`: restored from its experiment on `resume` when one was
    saved, a new one otherwise. `budget`: the trials' default budget (`default_budget`)."""
    from ray import tune

    from hpo.trainable import TrialContext, train_trial

    context = TrialContext(
        space=config.space,
        source=config.source,
        seed=config.seed,
        study_dir=config.study_dir.resolve(),
        tune_batch_size=config.tune_batch_size,
        memory_budget=config.memory_budget,
        default_budget=budget,
        gpus_per_trial=config.gpus_per_trial,
        num_concurrent_trials=config.max_concurrent,
        factor_store_path=factor_store_path(config),
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
            name=EXPERIMENT_NAME,
            storage_path=str(paths.ray_storage.resolve()),
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            # With a number to keep, a trial's checkpoint makes Ray save the experiment's
            # state at once: a trial's first report carries one (`TrialReports`).
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[
                StudyProgress(config.space.metric, config.space.epochs),
                MlflowTrialLogger(config.tracking_uri, config),
                StudyMetrics(config.name),
            ],
            verbose=0,
            log_to_file=True,
        ),
    )


def factor_store_path(config: StudyConfig) -> Path:
    from trainables.data.cache import default_cache_dir

    return (config.factor_store_path or default_cache_dir() / "safety_factors.json").resolve()


def _searcher(config: StudyConfig) -> Any:
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from hpo.searcher import OOMAwareOptunaSearch

    # Optuna's own INFO lines ("A new study created in RDB ...") are not in the study's log
    # format, and the study logs its start itself.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
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
    from trainables.batching.adaptive_factor import SafetyFactorStore

    space = config.space
    store = SafetyFactorStore(factor_store_path(config))
    key = warm_start_key(config)
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


def warm_start_key(config: StudyConfig) -> Any:
    """The adaptive store's key the study's trials record under (`factor_key` of each trial's
    config): the budget as asked for, 0 for the default (a GPU share included)."""
    from trainables.batching.adaptive_factor import SafetyFactorKey

    space = config.space
    return SafetyFactorKey(
        dataset=config.source.dataset_name,
        mode=space.mode,
        model_size=space.size,
        device_type="cuda" if config.gpus_per_trial > 0 else "cpu",
        budget_bytes=config.memory_budget or 0,
    )


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
