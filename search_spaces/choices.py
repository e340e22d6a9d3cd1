"""The closed sets a space chooses from: metric directions and searchable schedule types."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "DIRECTIONS",
    "EPOCH_COUNTING_KEYS",
    "RAMP_KEYS",
    "RAMP_SCHEDULE_TYPES",
    "SEARCHABLE_SCHEDULE_TYPES",
    "STEP_KEYS",
    "Direction",
    "SearchableScheduleType",
]

Direction = Literal["max", "min"]
"""Whether a larger or a smaller metric is better, as Ray Tune's `mode` spells it."""
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)

SearchableScheduleType = Literal["none", "step", "linear", "exponential", "cosine"]
"""The schedule types a space can search; `piecewise` is a list of milestones, set by hand."""
SEARCHABLE_SCHEDULE_TYPES: tuple[SearchableScheduleType, ...] = get_args(SearchableScheduleType)
RAMP_SCHEDULE_TYPES: tuple[SearchableScheduleType, ...] = ("linear", "exponential", "cosine")
"""The types that ramp to `schedule_final_batch_size` over `schedule_num_epochs` epochs."""

STEP_KEYS: tuple[str, ...] = ("schedule_step_size", "schedule_gamma", "schedule_max_batch_size")
"""The parameters a `step` schedule adds (`schedule_max_batch_size` only where searched)."""
RAMP_KEYS: tuple[str, ...] = ("schedule_final_batch_size", "schedule_num_epochs")
"""The parameters a `linear`, `exponential` or `cosine` schedule adds."""
EPOCH_COUNTING_KEYS: tuple[str, ...] = ("schedule_step_size", "schedule_num_epochs")
"""The parameters that count epochs: their ranges are capped at the space's epochs."""
