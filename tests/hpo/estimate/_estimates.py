"""Measurements for the estimate tests: a dataset probe, a dry study and their estimate."""

from __future__ import annotations

from typing import Any

from hpo.estimate import (
    DatasetProbe,
    LinearFit,
    Machinery,
    ModelProbe,
    StepBenchmark,
    StudyEstimate,
    combine,
    sampled_trials,
)
from search_spaces import get_space

GIB = 1 << 30
JSON_KEYS = {
    "space",
    "dataset",
    "device",
    "num_train_graphs",
    "num_eval_graphs",
    "memory_per_graph_bytes",
    "fixed_memory_bytes",
    "eval_memory_per_graph_bytes",
    "train_seconds_per_graph",
    "eval_seconds_per_graph",
    "max_train_batch_size",
    "max_eval_batch_size",
    "epoch_seconds",
    "trial_seconds",
    "study_seconds",
    "num_samples",
    "gpus",
    "slurm",
}


def make_probe(*, num_train: int = 1000, device: str = "cpu") -> DatasetProbe:
    """A probe of `num_train` training graphs an epoch for 3 epochs, its lines made up."""
    from trainables.training.config import TrainConfig

    return DatasetProbe(
        dataset="demo",
        device=device,  # type: ignore[arg-type]
        num_threads=1,
        budget_bytes=8 * GIB,
        num_train_graphs_per_epoch=(num_train,) * 3,
        num_val_graphs=250,
        num_test_graphs=(400,),
        train_probe_graphs=num_train,
        eval_probe_graphs=650,
        model=ModelProbe(
            batch_sizes=(8, 32, 128),
            train_memory=LinearFit(50e6, 1e6),
            eval_memory=LinearFit(20e6, 2e5),
            train_step=LinearFit(0.01, 0.001),
            eval_step=LinearFit(0.005, 0.0005),
            fit_overhead_seconds=0.1,
            eval_overhead_seconds=0.05,
        ),
        tuner_seconds=2.0,
        data_seconds=0.5,
        run_setup_seconds=0.3,
        prerequisite_seconds=0.0,
        dataset_bytes=10 * 2**20,
        model_bytes=2**20,
        driver_memory_bytes=GIB,
        benchmark=StepBenchmark(TrainConfig(mode="normal"), 8, 5, "cpu"),
        probe_seconds=5.0,
    )


def make_machinery(*, slowdown: float = 1.0) -> Machinery:
    """A dry study of two slots whose trials run `slowdown` times slower side by side."""
    return Machinery(
        ray_start_seconds=0.0,
        tracking_seconds=1.0,
        setup_seconds=0.2,
        slot_start_seconds=(8.0, 8.5),
        turnover_seconds=0.3,
        teardown_seconds=0.1,
        finish_seconds=1.5,
        cold_seconds=0.5,
        slowdown=slowdown,
        worker_memory_bytes=600 * 2**20,
        ray_memory_bytes=700 * 2**20,
        seconds=20.0,
    )


def make_estimate(probe: DatasetProbe, machinery: Machinery, **kwargs: Any) -> StudyEstimate:
    """`combine` for the normal space at 3 epochs and its first 6 sampled trials (seed 0)."""
    space = get_space("normal").with_overrides(epochs=3)
    trials = sampled_trials(space, num_samples=kwargs.pop("num_samples", 6), seed=0)
    return combine(probe, machinery, space=space, trials=trials, **kwargs)
