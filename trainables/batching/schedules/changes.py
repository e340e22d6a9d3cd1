"""`log_batch_size_change`: one log line when the train batch size changes between epochs."""

from __future__ import annotations

import logging

__all__ = ["log_batch_size_change"]

# The name the logger had before `schedules` became a package, so that log filters still match.
_logger = logging.getLogger("trainables.batching.schedules")


def log_batch_size_change(
    epoch: int,
    previous: int,
    current: int,
    *,
    num_epochs: int | None = None,
    logger: logging.Logger | None = None,
) -> bool:
    """Log one line when the train batch size changes: `epoch 21/30: train batch size 256 ->
    512`, numbered from 1 as the epoch lines are (`epoch 21/30: train_loss ...`).

    Args:
        epoch: The epoch that starts with the new size, from 0 (Lightning's `current_epoch`).
        previous: The batch size of the epoch before.
        current: The batch size of `epoch`.
        num_epochs: The run's epochs, for the line's `/N`; None leaves it out.
        logger: Where to log, at INFO; default the `trainables.batching.schedules` logger.

    Returns:
        Whether the size changed (and a line was logged).
    """
    if previous == current:
        return False
    of = "" if num_epochs is None else f"/{num_epochs}"
    (logger or _logger).info(
        "epoch %d%s: train batch size %d -> %d", epoch + 1, of, previous, current
    )
    return True
