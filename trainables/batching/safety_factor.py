"""From the tuner's largest batch size to the batch sizes a trial trains and evaluates with."""

from __future__ import annotations

import math
from decimal import Decimal

from trainables.errors import UserError

__all__ = ["apply_safety_factor", "resolve_eval_batch_size"]


def apply_safety_factor(tuned_max: int, factor: float) -> int:
    """Scale the tuned maximum batch size down by a safety factor: `max(1, floor(tuned_max * f))`.

    The product is taken on the factor's decimal form (`0.29`, not the float just below it), so
    `apply_safety_factor(100, 0.29) == 29`.

    Args:
        tuned_max: The largest batch size that fitted (>= 1).
        factor: The fraction of it to train with, in (0, 1].

    Returns:
        The batch size to apply, in 1..tuned_max.

    Raises:
        UserError: `factor` outside (0, 1], or `tuned_max` < 1.
    """
    if not 0.0 < factor <= 1.0:
        raise UserError(
            f"safety factor must be in (0, 1], got {factor=}; it is the fraction of the largest"
            " batch size that fitted to train with, e.g. 0.8"
        )
    if tuned_max < 1:
        raise UserError(f"tuned maximum batch size must be >= 1, got {tuned_max=}")
    return max(1, _floor_product(tuned_max, factor))


def resolve_eval_batch_size(
    *, applied_train: int, eval_multiplier: float, eval_max: int | None, explicit: int | None
) -> int:
    """The evaluation batch size: the explicit one, else the train size times a multiplier, capped.

    Evaluation keeps no activations for backward, so it usually fits a larger batch than training.

    Args:
        applied_train: The train batch size in use (>= 1).
        eval_multiplier: Evaluation size per train size (> 0), used without `explicit`.
        eval_max: The largest evaluation batch size that fitted (>= 1), or None for no cap.
        explicit: An evaluation batch size set by hand (>= 1); wins over everything else.

    Returns:
        `explicit` if given, else `max(1, min(floor(applied_train * eval_multiplier), eval_max))`.

    Raises:
        UserError: A size < 1, or a multiplier that is not a finite number > 0.
    """
    if explicit is not None:
        if explicit < 1:
            raise UserError(f"eval batch size must be >= 1, got {explicit=}; or leave it unset")
        return explicit
    if applied_train < 1:
        raise UserError(f"train batch size must be >= 1, got {applied_train=}")
    if not (eval_multiplier > 0 and math.isfinite(eval_multiplier)):
        raise UserError(
            f"eval batch-size multiplier must be a finite number > 0, got {eval_multiplier=};"
            " e.g. 2.0 evaluates twice the train batch size at once"
        )
    if eval_max is not None and eval_max < 1:
        raise UserError(f"eval maximum batch size must be >= 1, got {eval_max=}")
    size = _floor_product(applied_train, eval_multiplier)
    if eval_max is not None:
        size = min(size, eval_max)
    return max(1, size)


def _floor_product(count: int, factor: float) -> int:
    return math.floor(count * Decimal(repr(factor)))
