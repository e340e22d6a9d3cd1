"""`normal`, `curriculum` and `kd` modes: a GAT classifier, optionally distilled from a teacher."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch

from trainables.models import GATClassifier, distillation_loss
from trainables.modes.base import DetectionModule

__all__ = ["ClassifierModule", "DistillationModule"]


def _attack_probability(logits: Tensor) -> Tensor:
    return torch.softmax(logits, dim=1)[:, 1]


class ClassifierModule(DetectionModule):
    """Supervised GAT: cross-entropy on graph labels, attack probability as the score.

    Args:
        model: The GAT to train.
        learning_rate: Adam learning rate (default 1e-3).
        weight_decay: Adam weight decay (default 0).

    Example:
        >>> from trainables.models import GATConfig
        >>> module = ClassifierModule(GATClassifier(GATConfig.preset("student", vocab_size=8)))
        >>> module.learning_rate
        0.001
    """

    model: GATClassifier

    def __init__(
        self, model: GATClassifier, *, learning_rate: float = 1e-3, weight_decay: float = 0.0
    ) -> None:
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay)
        self.model = model

    def training_loss(self, batch: Batch) -> Tensor:
        return F.cross_entropy(self.model(batch), batch.y)

    def attack_score(self, batch: Batch) -> Tensor:
        return _attack_probability(self.model(batch))

    def validation_outputs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Plain cross-entropy (also for a distilled student) and the attack probability, from
        one forward pass."""
        logits = self.model(batch)
        return F.cross_entropy(logits, batch.y), _attack_probability(logits)


class DistillationModule(ClassifierModule):
    """Student GAT distilled from a frozen teacher GAT.

    Loss: `alpha * T^2 * KL(student/T || teacher/T) + (1 - alpha) * CE(student, y)`.
    Validation reports the student's plain cross-entropy as `val_loss`.

    Args:
        student: The GAT to train.
        teacher: A trained GAT; frozen and kept in eval mode.
        temperature: T (default 4).
        alpha: Weight of the distillation term (default 0.7).
        learning_rate: Adam learning rate (default 1e-3).
        weight_decay: Adam weight decay (default 0).
    """

    frozen = ("teacher",)

    def __init__(
        self,
        student: GATClassifier,
        teacher: GATClassifier,
        *,
        temperature: float = 4.0,
        alpha: float = 0.7,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(student, learning_rate=learning_rate, weight_decay=weight_decay)
        self.teacher = teacher.requires_grad_(False).eval()
        self.temperature = temperature
        self.alpha = alpha

    def training_loss(self, batch: Batch) -> Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(batch)
        return distillation_loss(
            self.model(batch),
            teacher_logits,
            batch.y,
            temperature=self.temperature,
            alpha=self.alpha,
        )
