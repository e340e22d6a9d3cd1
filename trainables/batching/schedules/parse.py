"""Schedules from JSON or a dict, and errors that name the wrong field: `parse_schedule`."""

from __future__ import annotations

import json
from collections.abc import Mapping

from pydantic import TypeAdapter, ValidationError

from trainables.batching.schedules.kinds import BatchSizeSchedule
from trainables.errors import UserError

__all__ = ["parse_schedule", "schedule_from_dict"]

_SCHEDULE_ADAPTER: TypeAdapter[BatchSizeSchedule] = TypeAdapter(BatchSizeSchedule)
_TYPES = "none, step, linear, exponential, cosine, piecewise"


def schedule_from_dict(
    data: Mapping[str, object], *, option: str = "schedule"
) -> BatchSizeSchedule:
    """Build a schedule from its fields, e.g. `{"type": "step", "step_size": 10, "gamma": 2}`.

    Args:
        data: The fields, with `type` one of none, step, linear, exponential, cosine, piecewise.
        option: Where the fields came from (an option or config key), for error messages.

    Returns:
        The schedule.

    Raises:
        UserError: Naming the field that is wrong and why.
    """
    try:
        return _SCHEDULE_ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        raise UserError(_describe_errors(exc, option=option)) from None


def parse_schedule(text: str, *, option: str = "--schedule") -> BatchSizeSchedule:
    """Parse a schedule from JSON: `--schedule '{"type": "step", "step_size": 10, "gamma": 2}'`.

    Args:
        text: A JSON object with the schedule's fields (see `schedule_from_dict`).
        option: The option the text came from, for error messages; default `--schedule`.

    Returns:
        The schedule.

    Raises:
        UserError: The text is not a JSON object, or a field is wrong (named in the message).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{option}: not valid JSON ({exc.msg} at column {exc.colno}) in {text!r};"
            ' write e.g. {"type": "step", "step_size": 10, "gamma": 2}'
        ) from None
    if not isinstance(data, dict):
        raise UserError(
            f"{option}: expected a JSON object, got {text!r};"
            ' write e.g. {"type": "step", "step_size": 10, "gamma": 2}'
        )
    return schedule_from_dict(data, option=option)


def _describe_errors(exc: ValidationError, *, option: str) -> str:
    problems = []
    for error in exc.errors():
        if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
            got = (
                f", got {error['input'].get('type')!r}" if isinstance(error["input"], dict) else ""
            )
            problems.append(f"field type must be one of {_TYPES}{got}")
            continue
        # The first location is the schedule type the union chose; the rest names the field.
        field = ".".join(str(part) for part in error["loc"][1:]) or "(schedule)"
        got = "" if error["type"] == "missing" else f" (got {error['input']!r})"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"field {field}: {message}{got}")
    return f"{option}: invalid batch-size schedule: " + "; ".join(problems)
