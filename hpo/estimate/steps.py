"""Timed training and evaluation steps of a real module, as a trial runs them.

`time_steps` is what the probe measures with; `StepBenchmark` is the same as a picklable recipe
that any process of this machine runs from the graph cache (the dry study's workers do).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from trainables.data.dataset import CANGraphDataset
    from trainables.training.config import TrainConfig

__all__ = [
    "Device",
    "StepBenchmark",
    "StepTiming",
    "default_budget",
    "median",
    "quiet_data_logs",
    "time_steps",
    "trial_datamodule",
]

Device = Literal["cpu", "cuda"]


@dataclass(frozen=True)
class StepTiming:
    """What `time_steps` measured (bytes, seconds): the fit's and the validate's peaks against
    their budgets, their steps after the first, their time outside the steps, and the whole."""

    train_peak_bytes: int
    eval_peak_bytes: int
    train_steps: tuple[float, ...]
    eval_steps: tuple[float, ...]
    fit_overhead_seconds: float
    eval_overhead_seconds: float
    wall_seconds: float


def median(values: Any) -> float:
    """`statistics.median`, 0.0 for no values (nothing measured costs nothing)."""
    values = list(values)
    return statistics.median(values) if values else 0.0


def time_steps(
    make_module: Callable[[], pl.LightningModule],
    train: CANGraphDataset,
    evaluation: CANGraphDataset,
    *,
    batch_size: int,
    num_steps: int,
    device: Device,
    seed: int,
    in_budget: bool = True,
) -> StepTiming:
    """A fit of `1 + num_steps` steps, then a validate of as many, each on a fresh module and
    (`in_budget`) inside a default `memory_budget`, as a trial's steps run. The first batch is
    `batch_size` of the largest graphs (the peak is the worst case), the others are random."""
    from trainables.batching.heaviest import largest_first

    start = time.perf_counter()
    measured: list[tuple[int, tuple[float, ...], float]] = []
    with tempfile.TemporaryDirectory(prefix="estimate-") as root, _quiet_warnings():
        for is_eval, dataset in ((False, train), (True, evaluation)):
            worst = largest_first(dataset.graphs.select(dataset.indices()), limit=batch_size)
            served = _batches(dataset, worst, batch_size, num_steps, seed=seed + is_eval)
            ends: list[float] = []
            with default_budget(device, in_budget=in_budget) as budget:
                tick = time.perf_counter()
                trainer = _trainer(_timer(ends, device), root, 1 + num_steps, is_eval=is_eval)
                if is_eval:
                    trainer.validate(make_module(), datamodule=served, verbose=False)
                else:
                    trainer.fit(make_module(), datamodule=served)
                wall = time.perf_counter() - tick
                del trainer
                peak = budget.peak_bytes if budget is not None else 0
            steps = tuple(b - a for a, b in itertools.pairwise(ends[1:]))
            measured.append((peak, steps, max(0.0, wall - (ends[-1] - ends[0]))))
    (train_peak, train_steps, fit_overhead), (eval_peak, eval_steps, eval_overhead) = measured
    return StepTiming(
        train_peak_bytes=train_peak,
        eval_peak_bytes=eval_peak,
        train_steps=train_steps,
        eval_steps=eval_steps,
        fit_overhead_seconds=fit_overhead,
        eval_overhead_seconds=eval_overhead,
        wall_seconds=time.perf_counter() - start,
    )


def trial_datamodule(config: TrainConfig) -> Any:
    """The datamodule `run_training` builds for `config`, set up (graphs from the cache)."""
    from trainables.training.run import build_datamodule

    datamodule = build_datamodule(config)
    with quiet_data_logs():
        datamodule.setup("fit")
    return datamodule


@contextlib.contextmanager
def quiet_data_logs() -> Iterator[None]:
    """The data's INFO lines ("split train: ... cache hit", "data: ... graphs") left out while
    it lasts: the estimate sets the same data up again and again, and said so each time (the
    driver's `prepare_data` says it once)."""
    data_logger = logging.getLogger("trainables.data")
    level = data_logger.level
    data_logger.setLevel(max(logging.WARNING, level))
    try:
        yield
    finally:
        data_logger.setLevel(level)


@dataclass(frozen=True)
class StepBenchmark:
    """A trial's set-up and steps as one timed unit (`run`), for any process of this machine.

    It pickles as a `TrainConfig` (a `GraphSource`, checkpoint paths), never as graphs: each
    process loads them from the graph cache.

    Example:
        >>> from trainables.training.config import TrainConfig
        >>> StepBenchmark(TrainConfig(mode="normal"), 8, 5, "cpu").run()  # doctest: +SKIP
    """

    config: TrainConfig
    batch_size: int
    num_steps: int
    device: Device
    seed: int = 0

    def run(self) -> StepTiming:
        """Data from the cache, a module, `time_steps`; `wall_seconds` counts all of it."""
        import dataclasses

        from trainables.training.prerequisites import module_factory

        start = time.perf_counter()
        datamodule = trial_datamodule(self.config)
        run_dir = Path(tempfile.mkdtemp(prefix=f"estimate-benchmark-{os.getpid()}-"))
        make_module = module_factory(self.config, len(datamodule.vocab), run_dir, {})
        timing = time_steps(
            make_module,
            datamodule.train_set,
            datamodule.val_set,
            batch_size=self.batch_size,
            num_steps=self.num_steps,
            device=self.device,
            seed=self.seed,
        )
        return dataclasses.replace(timing, wall_seconds=time.perf_counter() - start)


def _batches(
    dataset: CANGraphDataset, worst: CANGraphDataset, batch_size: int, num_steps: int, *, seed: int
) -> pl.LightningDataModule:
    """Serves, in order, `batch_size` of the largest graphs (cycled), then random batches."""
    import numpy as np
    import pytorch_lightning as pl

    from trainables.data.dataset import CANGraphDataset, GraphLoader
    from trainables.data.graphs import GraphArrays

    chosen = np.random.default_rng(seed).choice(len(dataset), size=num_steps * batch_size)
    first = worst.graphs.select(np.arange(batch_size) % worst.graphs.num_graphs)
    rest = dataset.graphs.select(np.asarray(dataset.indices())[chosen])
    graphs = CANGraphDataset(GraphArrays.concat([first, rest]))

    class Served(pl.LightningDataModule):
        def train_dataloader(self) -> GraphLoader:
            return GraphLoader(graphs, batch_size=batch_size)

        def val_dataloader(self) -> GraphLoader:
            return GraphLoader(graphs, batch_size=batch_size)

    return Served()


def _trainer(timer: pl.Callback, root: str, num_steps: int, *, is_eval: bool) -> pl.Trainer:
    from trainables.batching.tuner import TrainingState, quiet_trainer

    # As the tuner's probes do: the first step, and the evaluation, with the optimiser state and
    # gradients a run's steps hold beside them, so the peaks are the ones the tuner meets.
    return quiet_trainer(
        root,
        callbacks=[timer, TrainingState()],
        limit_train_batches=0 if is_eval else num_steps,
        limit_val_batches=num_steps if is_eval else 0,
    )


def _timer(times: list[float], device: Device) -> pl.Callback:
    """Appends the time at the first batch's start, then at every batch's end."""
    import pytorch_lightning as pl
    import torch

    def now(*, first: bool = False) -> None:
        if first and times:
            return
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter())

    class StepTimer(pl.Callback):
        def on_train_batch_start(self, *args: Any, **kwargs: Any) -> None:
            now(first=True)

        def on_validation_batch_start(self, *args: Any, **kwargs: Any) -> None:
            now(first=True)

        def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
            now()

        def on_validation_batch_end(self, *args: Any, **kwargs: Any) -> None:
            now()

    return StepTimer()


@contextlib.contextmanager
def default_budget(device: Device, *, in_budget: bool = True) -> Iterator[Any]:
    """A trial's default `memory_budget` on `device` (it measures the peak), or none."""
    if not in_budget:
        yield None
        return
    import torch

    from trainables.batching.budget import memory_budget

    with memory_budget(None, device=torch.device(device)) as budget:
        yield budget


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    # A probe batch may hold one class only: metrics warn, and their values are not measured.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield
