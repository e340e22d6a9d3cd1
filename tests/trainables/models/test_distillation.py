from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainables.errors import UserError
from trainables.models.distillation import distillation_loss


def _logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    student = torch.randn(6, 2, generator=g)
    teacher = torch.randn(6, 2, generator=g)
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    return student, teacher, labels


def test_distillation_loss_is_cross_entropy_when_alpha_is_zero() -> None:
    student, teacher, labels = _logits()
    loss = distillation_loss(student, teacher, labels, alpha=0.0)
    assert torch.allclose(loss, F.cross_entropy(student, labels))


def test_distillation_loss_kl_part_is_zero_for_identical_logits() -> None:
    student, _, labels = _logits()
    loss = distillation_loss(student, student.clone(), labels, alpha=1.0)
    assert loss.abs() < 1e-6


def test_distillation_loss_matches_formula() -> None:
    student, teacher, labels = _logits()
    t, alpha = 2.0, 0.3
    p_teacher = F.softmax(teacher / t, dim=1)
    kl = (p_teacher * (p_teacher.log() - F.log_softmax(student / t, dim=1))).sum(1).mean()
    expected = alpha * t**2 * kl + (1 - alpha) * F.cross_entropy(student, labels)
    loss = distillation_loss(student, teacher, labels, temperature=t, alpha=alpha)
    assert torch.allclose(loss, expected, atol=1e-6)


def test_distillation_loss_does_not_backpropagate_into_teacher() -> None:
    student, teacher, labels = _logits()
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    distillation_loss(student, teacher, labels).backward()
    assert student.grad is not None
    assert teacher.grad is None


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_distillation_loss_rejects_non_positive_temperature(temperature: float) -> None:
    student, teacher, labels = _logits()
    with pytest.raises(UserError, match="distillation temperature must be > 0"):
        distillation_loss(student, teacher, labels, temperature=temperature)


@pytest.mark.parametrize("alpha", [-0.1, 1.1])
def test_distillation_loss_rejects_alpha_outside_unit_interval(alpha: float) -> None:
    student, teacher, labels = _logits()
    with pytest.raises(UserError, match=r"distillation alpha must be in \[0, 1\]"):
        distillation_loss(student, teacher, labels, alpha=alpha)


def test_distillation_loss_rejects_mismatched_logits() -> None:
    student, _, labels = _logits()
    with pytest.raises(ValueError, match=r"student logits \(6, 2\) and teacher logits \(6, 3\)"):
        distillation_loss(student, torch.zeros(6, 3), labels)
