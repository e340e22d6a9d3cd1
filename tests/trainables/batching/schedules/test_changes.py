"""`trainables.batching.schedules.changes`: one log line per change of the batch size."""

from __future__ import annotations

import logging

import pytest

from trainables.batching import schedules
from trainables.batching.schedules import log_batch_size_change


def test_log_batch_size_change_logs_one_line_when_the_size_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=schedules.__name__):
        assert log_batch_size_change(20, 256, 512, num_epochs=30)
        assert not log_batch_size_change(21, 512, 512, num_epochs=30)
        assert log_batch_size_change(0, 64, 32)
    # Numbered from 1, as the epoch lines are: Lightning's epoch 20 is "epoch 21/30".
    assert [record.getMessage() for record in caplog.records] == [
        "epoch 21/30: train batch size 256 -> 512",
        "epoch 1: train batch size 64 -> 32",
    ]
