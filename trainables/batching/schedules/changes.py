"""`log_batch_size_change`: one log line when the train batch size changes between epochs."""

from __future__ import annotations

import logging

__all__ = ["log_batch_size_change"]

# The name the logger had before `schedules` became a package, so that log filters still match.
_logger = logging.getLogger("trainables.batching.schedules")


def log_batch_size_change(
    epoch: int, previous: int, current: int, *, logger: logging.Logger | None = None
) -> bool:
    """Log one line when the train batch size changes: `epoch 20: train batch size 256 -> 512`.

    Args:
        epoch: The epoch that starts with the new size.
        previous: The batch size of the epoch before.
        current: The batch size of `epoch`.
        logger: Where to log, at INFO; default the `trainables.batching.schedules` logger.

    Returns:
        Whether the size changed (and a line was logged).
    """
    if previous == current:
        return False
    (logger or _logger).info("epoch %d: train batch size %d -> %d", epoch, previous, current)
    return True
