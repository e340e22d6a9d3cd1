"""What every mode's LightningModule shares: optimiser, metric bookkeeping, test splits."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch_geometric.data import Batch
from torchmetrics import MetricCollection

from trainables.modes.metrics import detection_metrics, finite

__all__ = ["DetectionModule"]


class DetectionModule(pl.LightningModule):
    """Base of the modes: subclasses say how a batch becomes a loss and an attack score.

    Validation logs `val_loss` and `val_<metric>` for every detection metric; testing logs
    `test_<split>_<metric>` for each test split (names from `test_split_names`), and
    `test_results` keeps them as a nested dict.

    Args:
        learning_rate: Adam learning rate (default 1e-3).
        weight_decay: Adam weight decay (default 0).
    """

    model: torch.nn.Module  # what the run saves: its state dict and its `config` dataclass
    # Submodules that stay in eval mode, also while training (kd's teacher, fusion's inputs).
    frozen: tuple[str, ...] = ()

    def __init__(self, *, learning_rate: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__()
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.val_metrics: MetricCollection = self.make_metrics()
        self.test_metrics = torch.nn.ModuleList()
        self.test_split_names: list[str] = []
        self.test_results: dict[str, dict[str, float]] = {}

    def train(self, mode: bool = True) -> DetectionModule:
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()  # no dropout (or latent sampling) in them, ever
        return self

    # --- what a mode defines -----------------------------------------------------------
    def make_metrics(self) -> MetricCollection:
        """The metrics of one evaluation set (default: every detection metric)."""
        return detection_metrics()

    def training_loss(self, batch: Batch) -> Tensor:
        raise NotImplementedError

    def attack_score(self, batch: Batch) -> Tensor:
        """Score per graph, higher = more likely an attack (in [0, 1] unless the mode's
        metrics are threshold-free)."""
        raise NotImplementedError

    def validation_outputs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """`val_loss` and attack scores of a batch (eval mode, no gradients); default: the
        training loss and `attack_score`. A mode whose two come from one forward pass overrides
        this to run it once: validation is half the model work it would be otherwise."""
        return self.training_loss(batch), self.attack_score(batch)

    # --- Lightning hooks ----------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.learning_rate, weight_decay=self.weight_decay)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self.training_loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=batch.num_graphs)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        loss, score = self.validation_outputs(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=batch.num_graphs)
        self.val_metrics.update(score, batch.y)

    def on_validation_epoch_end(self) -> None:
        for name, value in finite(self.val_metrics.compute()).items():
            self.log(f"val_{name}", value)
        self.val_metrics.reset()

    def on_test_start(self) -> None:
        names = self.test_split_names or ["test"]
        self.test_metrics = torch.nn.ModuleList(self.make_metrics() for _ in names).to(self.device)
        self.test_results = {}

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        metrics: MetricCollection = self.test_metrics[dataloader_idx]  # type: ignore[assignment]
        metrics.update(self.attack_score(batch), batch.y)

    def on_test_epoch_end(self) -> None:
        names = self.test_split_names or ["test"]
        for name, metrics in zip(names, self.test_metrics, strict=True):
            assert isinstance(metrics, MetricCollection)
            self.test_results[name] = finite(metrics.compute())
            for metric, value in self.test_results[name].items():
                self.log(f"test_{name}_{metric}", value, add_dataloader_idx=False)
