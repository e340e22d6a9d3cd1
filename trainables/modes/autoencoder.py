"""`autoencoder` mode: a VGAE trained on normal graphs; its reconstruction error is the score."""

from __future__ import annotations

from torch import Tensor
from torch_geometric.data import Batch
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAUROC

from trainables.models import (
    VGAE,
    ReconstructionTargets,
    graph_anomaly_scores,
    output_anomaly_scores,
    reconstruction_targets,
    vgae_loss,
)
from trainables.modes.base import DetectionModule

__all__ = ["AutoencoderModule"]


class AutoencoderModule(DetectionModule):
    """VGAE training. Feed it normal graphs only (`train_on_normal_only=True` on the data).

    The anomaly score is unbounded, so validation and test report the threshold-free AUROC
    of the score on normal + attack graphs (`val_auroc`), plus `val_loss` over all validation
    graphs.

    Args:
        model: The VGAE to train.
        learning_rate: Adam learning rate (default 1e-3).
        weight_decay: Adam weight decay (default 0).

    Example:
        >>> from trainables.models import VGAEConfig
        >>> module = AutoencoderModule(VGAE(VGAEConfig.preset("student", vocab_size=8)))
        >>> sorted(module.val_metrics.keys())
        ['auroc']
    """

    model: VGAE

    def __init__(
        self, model: VGAE, *, learning_rate: float = 1e-3, weight_decay: float = 0.0
    ) -> None:
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay)
        self.model = model

    def make_metrics(self) -> MetricCollection:
        return MetricCollection({"auroc": BinaryAUROC()})

    def training_loss(self, batch: Batch) -> Tensor:
        return vgae_loss(self.model(batch), self._targets(batch)).total

    def attack_score(self, batch: Batch) -> Tensor:
        return graph_anomaly_scores(self.model, batch)

    def validation_outputs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The VGAE loss and the anomaly score from one forward pass (eval mode: `z = mu`)."""
        output, targets = self.model(batch), self._targets(batch)
        return vgae_loss(output, targets).total, output_anomaly_scores(output, targets, batch)

    def _targets(self, batch: Batch) -> ReconstructionTargets:
        return reconstruction_targets(
            batch.x, batch.edge_index, vocab_size=self.model.config.vocab_size
        )
