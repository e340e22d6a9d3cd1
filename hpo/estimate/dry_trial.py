"""The dry study's trials: a trial without training, and Ray Tune set up to run them.

`dry_tuner` builds the Tuner as `run_study` does (searcher, concurrency limiter, actor reuse,
callbacks) around `_dry_trial`, which imports what a trial imports, writes a run directory and
reports every epoch; the first `num_slots` trials also run the `StepBenchmark` behind file
barriers (`_benchmark`). Ray pickles `_dry_trial` and `DryContext` by this module's path: the
workers import them from here.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.estimate.steps import StepBenchmark, median

if TYPE_CHECKING:
    from hpo.study import StudyConfig

__all__ = ["DryContext", "dry_tuner"]

# What a trial's worker imports before it trains (`train_trial` -> `run_training`).
_TRIAL_MODULES = ("hpo.trainable", "trainables.training.run", "trainables.modes.curriculum")


@dataclass(frozen=True)
class DryContext:
    """What a dry trial is told: the metric, where runs go, its slots and the benchmark."""

    metric: str
    epochs: int
    runs_dir: Path
    model_bytes: int
    use_cuda: bool
    num_slots: int
    benchmark: StepBenchmark | None
    num_threads: int | None
    barrier_timeout_s: float = 300.0


def _dry_trial(params: dict[str, Any], context: DryContext) -> None:
    """A trial without training: imports, the benchmark (first trials), a run directory."""
    from ray import tune

    start = time.time()
    for name in _TRIAL_MODULES:
        importlib.import_module(name)
    if context.use_cuda:
        import torch

        torch.zeros(1, device="cuda")
    ready = time.time()
    run_dir = context.runs_dir / f"trial-{tune.get_context().get_trial_id() or 'local'}"
    run_dir.mkdir(parents=True, exist_ok=True)
    slot = _claim(context.runs_dir / "slots", context.num_slots)
    timings = {} if context.benchmark is None or slot is None else _benchmark(slot, context)
    (run_dir / "config.json").write_text(json.dumps(params, default=str))
    (run_dir / "metrics.json").write_text(json.dumps({"dry": True}))
    with (run_dir / "model.pt").open("wb") as model:
        model.truncate(context.model_bytes)
    from trainables.batching.system_memory import process_memory_bytes

    for epoch in range(1, context.epochs + 1):
        tune.report({context.metric: 0.0, "epoch": epoch, "train_batch_size": 1})
    tune.report(
        {
            context.metric: 0.0,
            "epoch": context.epochs,
            "run_dir": str(run_dir),
            "done": True,
            "dry_start": start,
            "dry_ready": ready,
            "dry_end": time.time(),
            "dry_rss_bytes": process_memory_bytes("VmRSS"),
            **timings,
        }
    )


def _benchmark(slot: int, context: DryContext) -> dict[str, float]:
    """The benchmark in slot `slot`: cold with the others, then twice: in slot 0 alone while the
    others wait, and warm with the others (a barrier before each)."""
    import torch

    benchmark, num_slots = context.benchmark, context.num_slots
    assert benchmark is not None
    if context.num_threads is not None:
        torch.set_num_threads(context.num_threads)

    def wait_for(name: str) -> None:
        folder = context.runs_dir / "barrier" / name
        _claim(folder, num_slots)
        deadline = time.time() + context.barrier_timeout_s
        while len(list(folder.iterdir())) < num_slots and time.time() < deadline:
            time.sleep(0.02)

    wait_for("cold")
    timings = {"dry_cold": benchmark.run().wall_seconds}
    alone: list[float] = []
    together: list[float] = []
    for index in range(2):
        if slot == 0:
            run = benchmark.run()
            alone += run.train_steps
            timings["dry_warm"] = run.wall_seconds
        wait_for(f"alone-{index}")  # slot 0 signs in once it has run alone
        if num_slots > 1:
            wait_for(f"together-{index}")
            run = benchmark.run()
            together += run.train_steps
            timings["dry_warm"] = run.wall_seconds
    if alone:
        timings["dry_alone_step"] = median(alone)
    if together:
        timings["dry_together_step"] = median(together)
    return timings


def _claim(folder: Path, num_slots: int) -> int | None:
    """Which of the first `num_slots` to get here this trial is (a file each, atomic), if any."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(num_slots):
        with contextlib.suppress(FileExistsError):
            os.close(os.open(folder / str(index), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return index
    return None


def dry_tuner(config: StudyConfig, context: DryContext, *, reuse_actors: bool) -> Any:
    """Ray Tune as `run_study` sets it up (searcher, limiter, reuse, callbacks), dry trainable."""
    import optuna
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from hpo.callbacks import StudyProgress
    from hpo.monitoring import StudyMetrics
    from hpo.searcher import OOMAwareOptunaSearch
    from hpo.tracking import MlflowTrialLogger

    space = config.space
    searcher = OOMAwareOptunaSearch(
        space=space.suggest,
        metric=space.metric,
        mode=space.direction,
        sampler=optuna.samplers.TPESampler(
            seed=config.seed, n_startup_trials=config.n_startup_trials
        ),
        storage=optuna.storages.RDBStorage(
            config.paths.optuna_url, engine_kwargs={"connect_args": {"timeout": 60}}
        ),
        study_name=config.name,
    )
    return tune.Tuner(
        tune.with_resources(
            tune.with_parameters(_dry_trial, context=context),
            {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial},
        ),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=config.max_concurrent),
            num_samples=config.num_samples,
            reuse_actors=reuse_actors,
        ),
        run_config=tune.RunConfig(
            name="trials",
            storage_path=str(config.paths.ray_storage.resolve()),
            failure_config=tune.FailureConfig(max_failures=0),
            callbacks=[
                StudyProgress(space.metric, space.epochs),
                MlflowTrialLogger(config.tracking_uri, config),
                StudyMetrics(config.name),
            ],
            verbose=0,
            log_to_file=True,
        ),
    )
