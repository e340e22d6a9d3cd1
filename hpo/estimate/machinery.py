"""The dry study: a study's own costs, without training, measured on this machine's Ray.

`measure_machinery` runs what `run_study` runs around the trials: the MLflow store and parent
run, Ray (started when none runs, as `run_study` starts it), Ray Tune with the study's searcher,
callbacks and actor reuse, the summary and the MLflow finish (plots, registered model). Its
`2 x concurrency` trials import what a trial imports, write a run directory and report every
epoch. The first `concurrency` of them also run the trial's `StepBenchmark`, behind a file
barrier each time: all together in their fresh workers (cold), then in one of them alone, then
all together again. Cold minus the last is what a trial pays more in a fresh worker; the last
run's steps over the lone run's are how much slower trials run side by side (cores, memory
bandwidth, a shared GPU). Its trials and the Tuner that runs them are
`hpo.estimate.dry_trial`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.estimate.dry_trial import DryContext, dry_tuner
from hpo.estimate.steps import StepBenchmark, median

if TYPE_CHECKING:
    from hpo.study import StudyConfig

__all__ = ["Machinery", "measure_machinery"]


@dataclass(frozen=True)
class Machinery:
    """What the dry study measured (seconds, bytes).

    Args:
        ray_start_seconds: Starting a local Ray; 0 when one ran (joined, as `run_study` does).
        tracking_seconds: The MLflow store check and the study's parent run.
        setup_seconds: The searcher and Ray Tune's set-up.
        slot_start_seconds: From the start of the trials until each slot's first trial has
            imported what a trial imports, in increasing order.
        turnover_seconds: From a trial's end to the next trial's start on the freed slot.
        teardown_seconds: From the last trial's end until Ray Tune returns.
        finish_seconds: The summary and the MLflow finish (plots, registered model).
        cold_seconds: How much longer a trial's first run in a fresh worker takes.
        slowdown: Trials' steps side by side over one trial's alone (1: one slot).
        worker_memory_bytes: Resident memory of a worker.
        ray_memory_bytes: Resident memory of this process's Ray processes.
        seconds: The dry study's own wall time.
    """

    ray_start_seconds: float
    tracking_seconds: float
    setup_seconds: float
    slot_start_seconds: tuple[float, ...]
    turnover_seconds: float
    teardown_seconds: float
    finish_seconds: float
    cold_seconds: float
    slowdown: float
    worker_memory_bytes: int
    ray_memory_bytes: int
    seconds: float


def measure_machinery(
    config: StudyConfig,
    *,
    concurrency: int,
    benchmark: StepBenchmark | None = None,
    num_threads: int | None = None,
    model_bytes: int = 0,
) -> Machinery:
    """Run the dry study of `config` (see the module docstring) and time its parts.

    Args:
        config: The study (its space, resources and seed; with `address`, trials get a fresh
            worker each, as on a cluster, and the turnover holds a worker's start-up). The dry
            study runs on this machine, in a folder of its own.
        concurrency: Trials at once (fewer when this machine's Ray holds fewer).
        benchmark: The trial's steps; None measures neither cold start nor slowdown.
        num_threads: CPU threads a trial trains with.
        model_bytes: Size of the model file each dry run directory holds (MLflow logs it).
    """
    import ray

    start = time.perf_counter()
    started = not ray.is_initialized()
    if started:
        from hpo.monitoring import init_ray

        with _quiet_logger("hpo.run"):
            init_ray(None, dashboard_host="127.0.0.1")  # as `run_study` starts a local Ray
    ray_start = time.perf_counter() - start if started else 0.0
    resources = ray.cluster_resources()
    slots = min(concurrency, max(1, int(resources.get("CPU", 1.0) // config.cpus_per_trial)))
    if config.gpus_per_trial > 0:
        slots = min(slots, max(1, int(resources.get("GPU", 0.0) // config.gpus_per_trial)))
    try:
        with tempfile.TemporaryDirectory(prefix="estimate-dry-") as root:
            dry = dataclasses.replace(
                config,
                study_dir=Path(root) / "studies" / "dry",
                num_samples=2 * slots,
                max_concurrent=slots,
                warm_start=False,
                factor_store_path=Path(root) / "safety_factors.json",
                points_to_evaluate=(),
                mlflow_uri=None,
            )
            context = DryContext(
                metric=config.space.metric,
                epochs=config.space.epochs,
                runs_dir=(dry.study_dir / "runs").resolve(),
                model_bytes=model_bytes,
                use_cuda=config.gpus_per_trial > 0,
                num_slots=slots,
                benchmark=benchmark,
                num_threads=num_threads,
            )
            parts = _dry_study(dry, context, reuse_actors=config.address is None)
    finally:
        if started:
            ray.shutdown()
    return Machinery(ray_start_seconds=ray_start, seconds=time.perf_counter() - start, **parts)


def _dry_study(config: StudyConfig, context: DryContext, *, reuse_actors: bool) -> dict:
    import psutil

    from hpo.summary import summarise
    from hpo.tracking import StudyTracker, check_tracking_uri
    from trainables.training.files import write_json

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
    tick = time.perf_counter()
    check_tracking_uri(config.tracking_uri)
    config.study_dir.mkdir(parents=True)
    StudyTracker(config.tracking_uri, config)
    tracking = time.perf_counter() - tick
    ray_memory = 0
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            ray_memory += child.memory_info().rss
    tick = time.perf_counter()
    tuner = dry_tuner(config, context, reuse_actors=reuse_actors)
    setup = time.perf_counter() - tick
    fit_start = time.time()
    with contextlib.redirect_stdout(sys.stderr), _quiet_logger("hpo.run"):
        results = tuner.fit()
    fit_end = time.time()
    tick = time.perf_counter()
    summary = summarise(config, results)
    with _quiet_logger("hpo.run"):  # "registered ...": the dry study's model is no news
        StudyTracker(config.tracking_uri, config, resume=True).finish(summary, complete=True)
    write_json(config.paths.summary, summary)
    finish = time.perf_counter() - tick
    trials = sorted(
        (r.metrics for r in results if r.metrics and "dry_start" in r.metrics),
        key=lambda t: t["dry_start"],
    )
    if len(trials) < config.num_samples:
        errors = [str(r.error) for r in results if r.error is not None]
        raise RuntimeError(f"the dry study ran {len(trials)} of {config.num_samples}: {errors}")
    first, later = trials[: context.num_slots], trials[context.num_slots :]
    ends = sorted(t["dry_end"] for t in trials)
    together = median(t["dry_together_step"] for t in first if "dry_together_step" in t)
    alone = median(t["dry_alone_step"] for t in first if "dry_alone_step" in t)
    return {
        "tracking_seconds": tracking,
        "setup_seconds": setup,
        "slot_start_seconds": tuple(sorted(t["dry_ready"] - fit_start for t in first)),
        # The k-th later trial takes the slot the k-th trial to end freed.
        "turnover_seconds": median(t["dry_ready"] - e for t, e in zip(later, ends, strict=False)),
        "teardown_seconds": fit_end - ends[-1],
        "finish_seconds": finish,
        "cold_seconds": max(
            0.0, median(t["dry_cold"] - t["dry_warm"] for t in first if "dry_cold" in t)
        ),
        # Contention never makes a step faster: a ratio below 1 is noise.
        "slowdown": max(1.0, together / alone) if together and alone else 1.0,
        "worker_memory_bytes": int(max(t["dry_rss_bytes"] for t in trials)),
        "ray_memory_bytes": ray_memory,
    }


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)
