"""Batch-size schedules: how the train batch size changes from epoch to epoch.

Every schedule starts from the applied batch size (the tuner's maximum times the safety factor)
at epoch 0 and, with `cap_at_tuned_max` (the default), never exceeds the tuner's maximum, which is
what fits in memory. Epochs count from 0, as Lightning's `current_epoch` does.
"""

from __future__ import annotations

from trainables.batching.schedules.changes import log_batch_size_change
from trainables.batching.schedules.kinds import (
    BatchSizeSchedule,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    PiecewiseSchedule,
    StepSchedule,
    check_milestones_reached,
)
from trainables.batching.schedules.parse import parse_schedule, schedule_from_dict

__all__ = [
    "BatchSizeSchedule",
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "PiecewiseSchedule",
    "StepSchedule",
    "check_milestones_reached",
    "log_batch_size_change",
    "parse_schedule",
    "schedule_from_dict",
]
