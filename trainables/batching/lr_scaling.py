"""Learning rate for a new batch size: none, linear or square-root scaling."""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["LrScaling", "scale_learning_rate"]

LrScaling = Literal["none", "linear", "sqrt"]


def scale_learning_rate(
    base_lr: float, *, base_batch_size: int, batch_size: int, rule: LrScaling
) -> float:
    """The learning rate for `batch_size`, given the one tuned for `base_batch_size`.

    `linear` keeps the step per sample constant (Goyal et al., 2017); `sqrt` keeps the gradient
    noise constant (Krizhevsky, 2014; Hoffer et al., 2017); `none` leaves it unchanged.

    Args:
        base_lr: Learning rate at `base_batch_size` (> 0).
        base_batch_size: The batch size `base_lr` belongs to (>= 1).
        batch_size: The new batch size (>= 1).
        rule: `"none"`, `"linear"` or `"sqrt"`.

    Returns:
        `base_lr` times 1, `batch_size / base_batch_size`, or its square root.

    Raises:
        ValueError: A batch size < 1, a learning rate <= 0 or an unknown rule.
    """
    if base_batch_size < 1 or batch_size < 1:
        raise ValueError(f"batch sizes must be >= 1, got {base_batch_size=}, {batch_size=}")
    if not base_lr > 0:
        raise ValueError(f"base_lr must be > 0, got {base_lr=}")
    ratio = batch_size / base_batch_size
    if rule == "none":
        return base_lr
    if rule == "linear":
        return base_lr * ratio
    if rule == "sqrt":
        return base_lr * math.sqrt(ratio)
    raise ValueError(f"rule must be one of 'none', 'linear', 'sqrt', got {rule=}")
