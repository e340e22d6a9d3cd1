"""`estimate_study(config)`: probe each dataset, run the dry study, and combine them."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.estimate.arithmetic import DEFAULT_MARGIN

if TYPE_CHECKING:
    from hpo.estimate.combine import StudyEstimate
    from hpo.estimate.steps import Device
    from hpo.study import StudyConfig
    from search_spaces.base import SearchSpace
    from trainables.data.source import GraphSource

__all__ = ["estimate_study", "warm_up_driver"]

logger = logging.getLogger("hpo.estimate")

# What a fresh `python -m hpo.run` imports before its study starts (torch, Ray, MLflow, ...).
_DRIVER_MODULES = ("hpo.study", "hpo.prepare", "hpo.tracking", "trainables.training.run")


def estimate_study(
    config: StudyConfig,
    *,
    sources: Sequence[GraphSource] = (),
    gpus: int | None = None,
    gpus_per_node: int | None = None,
    gpu_memory_bytes: int | None = None,
    margin: float = DEFAULT_MARGIN,
    startup_seconds: float | None = None,
) -> list[StudyEstimate]:
    """Estimate the study `config` describes, on each of `sources` (default its own).

    A study that joins a cluster (`config.address`, as the SLURM job's) is estimated as one: a
    fresh worker per trial, Ray's start-up outside the study. Its trials run on CUDA when they
    take GPUs and one is here, else on CPU. Nothing is written to `config.study_dir`.

    Args:
        config: The study.
        sources: Datasets to estimate it on (`--compare`).
        gpus: GPUs of the job (SLURM), which bound the concurrency of GPU trials (default:
            this machine's, at least 1).
        gpus_per_node: GPUs of one node (default: all on one).
        gpu_memory_bytes: Memory of one GPU (default: this machine's).
        margin: SLURM time over the estimate.
        startup_seconds: A fresh driver's start-up (default: `warm_up_driver`'s here).

    Example:
        >>> from hpo.study import StudyConfig
        >>> from search_spaces import get_space
        >>> config = StudyConfig(get_space("normal").smoke(), Path("studies/demo"))
        >>> estimate_study(config)[0].slurm["time"]  # doctest: +SKIP
        '00:03:00'
    """
    from hpo.estimate.combine import combine, sampled_trials, trial_budget_bytes
    from hpo.estimate.machinery import measure_machinery
    from hpo.estimate.probe import probe_dataset

    warm_up = warm_up_driver(config.space)
    import torch

    gpus = gpus or max(1, torch.cuda.device_count())
    gpus_per_trial = config.gpus_per_trial
    device: Device = "cuda" if gpus_per_trial > 0 and torch.cuda.is_available() else "cpu"
    concurrency = min(config.max_concurrent, config.num_samples)
    if gpus_per_trial > 0:
        concurrency = max(1, min(concurrency, math.floor(gpus / gpus_per_trial + 1e-9)))
    budget = trial_budget_bytes(
        device,
        num_concurrent_trials=concurrency,
        gpus_per_trial=gpus_per_trial,
        memory_budget=config.memory_budget,
        gpu_memory_bytes=gpu_memory_bytes,
    )
    threads = max(1, int(config.cpus_per_trial)) if device == "cpu" else None
    # Absolute, as `run_study` makes them: the dry study's Ray workers run in their own folder.
    config = dataclasses.replace(config, source=config.source.absolute())
    sources = [source.absolute() for source in sources] or [config.source]
    spaces = [
        config.space.with_overrides(dataset=s.dataset_name, window=s.window) for s in sources
    ]
    logger.info(
        "estimate: %d trials of %s on %s (%s), %d at a time",
        config.num_samples,
        config.space.name,
        ", ".join(s.dataset_name for s in sources),
        device,
        concurrency,
    )
    with tempfile.TemporaryDirectory(prefix="estimate-") as tmp:
        probes = []
        for index, (space, source) in enumerate(zip(spaces, sources, strict=True)):
            workdir = Path(tmp) / f"probe-{index}"
            probes.append(
                probe_dataset(
                    space,
                    source,
                    device=device,
                    budget_bytes=budget,
                    workdir=workdir,
                    seed=config.seed,
                    num_threads=threads,
                )
            )
            logger.info(
                "estimate: %s probed in %.1f s", source.dataset_name, probes[-1].probe_seconds
            )
        machinery = measure_machinery(
            dataclasses.replace(
                config,
                space=spaces[0],
                source=sources[0],
                gpus_per_trial=gpus_per_trial if device == "cuda" else 0.0,
            ),
            concurrency=concurrency,
            benchmark=probes[0].benchmark,
            num_threads=threads,
            model_bytes=max(p.model_bytes for p in probes),
        )
        logger.info("estimate: dry study in %.1f s", machinery.seconds)
    return [
        combine(
            probe,
            machinery,
            space=space,
            trials=sampled_trials(
                space,
                num_samples=config.num_samples,
                seed=config.seed,
                n_startup_trials=config.n_startup_trials,
            ),
            max_concurrent=concurrency,
            gpus=gpus,
            gpus_per_node=gpus_per_node,
            gpus_per_trial=gpus_per_trial,
            startup_seconds=warm_up if startup_seconds is None else startup_seconds,
            margin=margin,
            cluster=config.address is not None,
        )
        for probe, space in zip(probes, spaces, strict=True)
    ]


def warm_up_driver(space: SearchSpace) -> float:
    """Import what a study's driver imports, lazy imports included; return the seconds.

    The first MLflow store and the first plots import their libraries on first use: start-up of
    a fresh `python -m hpo.run`, not of its study. Done here on throwaway ones, so that the dry
    study times what `run_study` takes in a process that has them.
    """
    tick = time.perf_counter()
    for name in _DRIVER_MODULES:
        importlib.import_module(name)
    import optuna

    from hpo.plots import write_study_plots
    from hpo.tracking import check_tracking_uri

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="estimate-warm-up-") as tmp:
        check_tracking_uri(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        study = optuna.create_study(direction="maximize")
        for value in (0.1, 0.2, 0.3):
            trial = study.ask()
            space.suggest(trial)
            study.tell(trial, value)
        write_study_plots(study, Path(tmp) / "plots", metric=space.metric)
    return time.perf_counter() - tick
