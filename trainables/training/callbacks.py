"""Lightning callbacks of a run: per-epoch history with batch-size verification, the stage in
progress (to name where an out-of-memory error happened), learning-rate scaling."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import pytorch_lightning as pl

from trainables.batching.budget import MemoryBudget
from trainables.batching.schedules import BatchSizeSchedule
from trainables.training.config import OomStage

__all__ = ["BatchSizeLearningRate", "EpochHistory", "StageTracker"]

logger = logging.getLogger("trainables.train")


def _datamodule(trainer: pl.Trainer) -> Any:
    return trainer.datamodule  # type: ignore[attr-defined]


class EpochHistory(pl.Callback):
    """Per-epoch metrics, and proof that each epoch ran at the batch size it was meant to.

    At the start of every epoch the number of training batches must be
    `ceil(graphs this epoch / batch size)`; otherwise the run stops with an error saying so (a
    batch size computed but never applied is the bug this guards against).
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.budget: MemoryBudget | None = None  # set while a budget is active: peaks per epoch
        self._num_batches = 0
        self._num_graphs = 0
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()
        loader = trainer.train_dataloader
        batch_size = int(_datamodule(trainer).batch_size)
        # The sampler's length: a curriculum epoch trains on a sample of the dataset.
        self._num_graphs = len(loader.sampler)  # type: ignore[union-attr, arg-type]
        self._num_batches = int(trainer.num_training_batches)
        expected = math.ceil(self._num_graphs / batch_size)
        if self._num_batches != expected:
            raise RuntimeError(
                f"epoch {trainer.current_epoch}: the batch size {batch_size} was not applied: "
                f"{self._num_batches} training batches for {self._num_graphs} graphs, expected "
                f"ceil({self._num_graphs}/{batch_size}) = {expected}"
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        row = {
            name: float(v)
            for name, v in trainer.callback_metrics.items()
            if name.startswith(("train_", "val_"))
        }
        row["epoch"] = trainer.current_epoch
        row["num_train_batches"] = self._num_batches
        row["num_train_graphs"] = self._num_graphs
        row["train_batch_size"] = int(_datamodule(trainer).batch_size)
        # Training and validation (Lightning validates before this hook).
        row["epoch_seconds"] = time.perf_counter() - self._start
        if self.budget is not None:
            row["peak_memory_bytes"] = self.budget.peak_bytes  # the run's peak so far
        self.epochs.append(row)


class StageTracker(pl.Callback):
    """Which stage is running: where an out-of-memory error, if any, happened."""

    def __init__(self, stage: OomStage = "train") -> None:
        self.stage: OomStage = stage

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.stage = "train"

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.stage = "validation"

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.stage = "train"

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.stage = "test"


class BatchSizeLearningRate(pl.Callback):
    """Scales the learning rate with the batch size in use (`lr_scaling` of the schedule).

    Args:
        schedule: The batch-size schedule (its `lr_scaling` rule decides).
        base_lr: Learning rate at `base_batch_size`.
        base_batch_size: The first epoch's batch size.
    """

    def __init__(
        self, schedule: BatchSizeSchedule, *, base_lr: float, base_batch_size: int
    ) -> None:
        self.schedule = schedule
        self.base_lr = base_lr
        self.base_batch_size = base_batch_size

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batch_size = int(_datamodule(trainer).batch_size)
        lr = self.schedule.learning_rate_for(
            batch_size, base_lr=self.base_lr, base_batch_size=self.base_batch_size
        )
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                if group["lr"] != lr:
                    logger.info(
                        "epoch %d/%d: learning rate %.3g -> %.3g (batch size %d)",
                        trainer.current_epoch + 1,
                        trainer.max_epochs,
                        group["lr"],
                        lr,
                        batch_size,
                    )
                group["lr"] = lr
