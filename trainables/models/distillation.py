"""`distillation_loss`: Hinton knowledge distillation from a teacher's logits."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from trainables.errors import UserError

__all__ = ["distillation_loss"]


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    *,
    temperature: float = 4.0,
    alpha: float = 0.7,
) -> Tensor:
    """`alpha * T^2 * KL + (1 - alpha) * CE(student, labels)`.

    The KL term compares the temperature-softened distributions `softmax(student / T)` and
    `softmax(teacher / T)`; it is `F.kl_div(log_softmax(student / T), softmax(teacher / T))`
    with `batchmean` reduction, i.e. KL(teacher || student), the form of Hinton et al. (2015)
    whose gradient pulls the student towards the teacher. `T^2` keeps its gradient scale
    independent of `T`. The teacher's logits are detached.

    Args:
        student_logits: `[batch, num_classes]`.
        teacher_logits: `[batch, num_classes]`, from a frozen teacher.
        labels: int64 `[batch]` class labels.
        temperature: Softening temperature `T`, > 0. Default 4.0.
        alpha: Weight of the distillation term, in [0, 1]; 0 is plain cross-entropy.
            Default 0.7.

    Returns:
        The scalar loss.

    Raises:
        UserError: `temperature` is not > 0 or `alpha` is outside [0, 1].
        ValueError: The logits' shapes differ.

    Example:
        >>> import torch
        >>> s = torch.tensor([[2.0, -1.0]])
        >>> round(float(distillation_loss(s, s, torch.tensor([0]), alpha=1.0)), 6)
        0.0
    """
    if not (math.isfinite(temperature) and temperature > 0):
        raise UserError(f"distillation temperature must be > 0, got {temperature=}")
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"distillation alpha must be in [0, 1], got {alpha=}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits"
            f" {tuple(teacher_logits.shape)} must have the same shape"
        )
    kl = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.softmax(teacher_logits.detach() / temperature, dim=-1),
        reduction="batchmean",
    )
    ce = F.cross_entropy(student_logits, labels)
    return alpha * temperature**2 * kl + (1.0 - alpha) * ce
