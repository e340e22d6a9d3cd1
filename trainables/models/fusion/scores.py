"""Fusing VGAE and GAT scores: action alphas, score normalisation, fused score and reward."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from trainables.errors import UserError

__all__ = ["ScoreScale", "action_alphas", "fuse_scores", "fusion_reward"]


def action_alphas(num_actions: int = 21) -> Tensor:
    """The fusion weight of each action: `linspace(0, 1, num_actions)`.

    Args:
        num_actions: Number of actions, >= 2. Default 21 (alpha steps of 0.05).

    Returns:
        float `[num_actions]`; action `i` weights the GAT by `alphas[i]`.

    Raises:
        UserError: `num_actions` < 2.
    """
    if num_actions < 2:
        raise UserError(f"fusion needs num_actions >= 2, got {num_actions=}")
    return torch.linspace(0.0, 1.0, num_actions)


@dataclass(frozen=True)
class ScoreScale:
    """Min-max normalisation of the VGAE anomaly score to [0, 1], clipped.

    The raw score is an unbounded reconstruction error, so before it is fused with a
    probability it is mapped through `clamp((score - low) / (high - low), 0, 1)`. Fit it with
    `ScoreScale.fit` on the scores of a validation set with both classes (on normal graphs only,
    every attack would sit at 1.0), and keep it with the agent: a different scale changes what
    the learnt alphas mean.

    Args:
        low: Raw score mapped to 0.
        high: Raw score mapped to 1; must be > `low`.

    Example:
        >>> scale = ScoreScale.fit(torch.tensor([1.0, 2.0, 3.0]))
        >>> scale(torch.tensor([0.0, 2.0, 9.0])).tolist()
        [0.0, 0.5, 1.0]
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.high > self.low):
            raise UserError(
                f"score scale needs finite low < high, got low={self.low}, high={self.high};"
                " fit it on scores that are not all equal"
            )

    @classmethod
    def fit(cls, scores: Tensor) -> ScoreScale:
        """Scale spanning the minimum and maximum of `scores` (raw VGAE scores, any shape)."""
        if scores.numel() == 0:
            raise UserError("cannot fit a score scale on no scores; give it a validation set")
        return cls(low=float(scores.min()), high=float(scores.max()))

    def __call__(self, scores: Tensor) -> Tensor:
        """Normalised scores, same shape, in [0, 1]."""
        return ((scores - self.low) / (self.high - self.low)).clamp(0.0, 1.0)


def fuse_scores(vgae_score: Tensor, gat_probability: Tensor, alpha: Tensor | float) -> Tensor:
    """Fused attack score `(1 - alpha) * vgae_score + alpha * gat_probability`.

    Args:
        vgae_score: Normalised VGAE anomaly score in [0, 1] (see `ScoreScale`), `[G]`.
        gat_probability: GAT probability of the attack class, `[G]`.
        alpha: Weight of the GAT per graph (`[G]`, e.g. `alphas[actions]`) or one float.

    Returns:
        float `[G]` in [0, 1]; threshold it (default 0.5, as in `fusion_reward`) to decide.

    Example:
        >>> fuse_scores(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 0.25).tolist()
        [0.75, 0.25]
    """
    return (1.0 - alpha) * vgae_score + alpha * gat_probability


def fusion_reward(
    fused_score: Tensor,
    labels: Tensor,
    *,
    threshold: float = 0.5,
    reward: float = 1.0,
    penalty: float = 1.0,
) -> Tensor:
    """Reward of each fused decision: `+reward` when right, `-penalty` when wrong.

    A graph is called an attack when `fused_score >= threshold`.

    Args:
        fused_score: `fuse_scores` output, `[G]`.
        labels: int64 `[G]` graph labels (1 = attack).
        threshold: Decision threshold on the fused score. Default 0.5.
        reward: Reward for a correct decision. Default 1.0.
        penalty: Amount subtracted for a wrong decision (>= 0). Default 1.0.

    Returns:
        float `[G]`.

    Raises:
        UserError: `penalty` is negative.
    """
    if penalty < 0:
        raise UserError(f"fusion penalty is subtracted and must be >= 0, got {penalty=}")
    correct = (fused_score >= threshold).long() == labels.view(-1).long()
    return torch.where(correct, reward, -penalty).to(fused_score.dtype)
