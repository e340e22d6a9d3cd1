"""One log line per epoch, whatever the mode: what a log file or CI output wants."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl

__all__ = ["EpochLogLine"]

logger = logging.getLogger("trainables.train")


class EpochLogLine(pl.Callback):
    """Logs `epoch 3/10: train_loss 0.1234 val_f1 0.9712 ... (12.3 s)` after validation.

    Args:
        num_epochs: Epochs the run will train, for the `3/10` counter.
    """

    def __init__(self, num_epochs: int) -> None:
        self.num_epochs = num_epochs
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics: dict[str, Any] = trainer.callback_metrics
        shown = " ".join(
            f"{name} {float(value):.4f}"
            for name, value in sorted(metrics.items())
            if name.startswith(("train_", "val_")) and not name.endswith("_step")
        )
        logger.info(
            "epoch %d/%d: %s (%.1f s)",
            trainer.current_epoch + 1,
            self.num_epochs,
            shown,
            time.perf_counter() - self._start,
        )
