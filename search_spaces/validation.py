"""`validate_space`: every check a search space must pass before Ray starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search_spaces.choices import (
    DIRECTIONS,
    EPOCH_COUNTING_KEYS,
    RAMP_KEYS,
    SEARCHABLE_SCHEDULE_TYPES,
    STEP_KEYS,
)
from search_spaces.ranges import FloatRange, IntRange
from search_spaces.settings import SCHEDULE_PREFIX
from trainables.batching.schedules import schedule_from_dict
from trainables.errors import UserError, require_int
from trainables.models import MODEL_SIZES
from trainables.training import MODES

if TYPE_CHECKING:
    from search_spaces.base import SearchSpace

__all__ = ["validate_space"]


def validate_space(space: SearchSpace) -> None:
    """Check every field of `space`: fixed settings, ranges, schedule types and parameters.

    Args:
        space: The space to check.

    Raises:
        UserError: Naming the space, the field, what is wrong and how to fix it.
    """
    if not (isinstance(space.name, str) and space.name):
        raise UserError(f"search space name must be a non-empty string, got {space.name!r}")
    where = f"search space {space.name!r}"
    _check_fixed(space, where)
    for key, minimum in (("batch_size", 1), ("eval_multiplier", 1)):
        _int_range(space, key, where).check(f"{where}: field {key}", minimum=minimum)
    _float_range(space, "safety_factor", where).check(
        f"{where}: field safety_factor", above=0.0, maximum=1.0
    )
    _float_range(space, "learning_rate", where).check(f"{where}: field learning_rate", above=0.0)
    _check_schedule_types(space, where)
    for key in (*STEP_KEYS, *RAMP_KEYS):
        if getattr(space, key) is None and key == "schedule_max_batch_size":
            continue  # no cap of the schedule's own, and no such parameter
        bounds = _int_range(space, key, where)
        bounds.check(f"{where}: field {key}")
        if key in EPOCH_COUNTING_KEYS and bounds.low > space.epochs:
            raise UserError(
                f"{where}: field {key}: low must be <= epochs ({space.epochs}), got {bounds!r};"
                " lower low or raise epochs"
            )
    # The schedule's own rules (gamma >= 2, sizes >= 1, ...) hold over a whole range when they
    # hold at both ends: check them with the schedule's validation, not a copy of it.
    for schedule_type in SEARCHABLE_SCHEDULE_TYPES:
        for end in ("low", "high"):
            schedule_from_dict(
                {
                    "type": schedule_type,
                    **{
                        key.removeprefix(SCHEDULE_PREFIX): getattr(bounds, end)
                        for key, bounds in space.schedule_ranges(schedule_type).items()
                    },
                },
                option=(
                    f"{where}: the {schedule_type} schedule at the {end} ends of the"
                    " schedule_* ranges"
                ),
            )


def _check_fixed(space: SearchSpace, where: str) -> None:
    if space.mode not in MODES:
        raise UserError(
            f"{where}: field mode must be one of {', '.join(MODES)}, got {space.mode!r}"
        )
    if space.size not in MODEL_SIZES:
        raise UserError(
            f"{where}: field size must be one of {', '.join(MODEL_SIZES)}, got {space.size!r}"
        )
    if space.mode == "kd" and space.size != "student":
        raise UserError(f"{where}: field size: mode kd trains a student; set size='student'")
    for key, minimum in (("epochs", 1), ("window", 2)):
        require_int(f"{where}: field {key}", getattr(space, key), minimum=minimum)
    for key in ("dataset", "metric"):
        value = getattr(space, key)
        if not (isinstance(value, str) and value):
            raise UserError(f"{where}: field {key} must be a non-empty string, got {value!r}")
    if space.direction not in DIRECTIONS:
        raise UserError(
            f"{where}: field direction must be 'max' or 'min' (whether a larger"
            f" {space.metric} is better), got {space.direction!r}"
        )


def _check_schedule_types(space: SearchSpace, where: str) -> None:
    types = space.schedule_type
    known = ", ".join(SEARCHABLE_SCHEDULE_TYPES)
    if not isinstance(types, tuple) or not types:
        raise UserError(
            f"{where}: field schedule_type must be a non-empty tuple of schedule types"
            f" ({known}), got {types!r}"
        )
    for schedule_type in types:
        if schedule_type not in SEARCHABLE_SCHEDULE_TYPES:
            why = (
                " (piecewise milestones are a list, set by hand, not searched)"
                if schedule_type == "piecewise"
                else ""
            )
            raise UserError(
                f"{where}: field schedule_type: unknown schedule type {schedule_type!r}{why};"
                f" choose from {known}"
            )
    if len(set(types)) < len(types):
        raise UserError(f"{where}: field schedule_type lists a type twice: {types!r}")


def _int_range(space: SearchSpace, key: str, where: str) -> IntRange:
    bounds = getattr(space, key)
    if not isinstance(bounds, IntRange):
        raise UserError(
            f"{where}: field {key} must be an IntRange, e.g. IntRange(8, 1024, log=True),"
            f" got {bounds!r}"
        )
    return bounds


def _float_range(space: SearchSpace, key: str, where: str) -> FloatRange:
    bounds = getattr(space, key)
    if not isinstance(bounds, FloatRange):
        raise UserError(
            f"{where}: field {key} must be a FloatRange, e.g. FloatRange(0.3, 1.0), got {bounds!r}"
        )
    return bounds
