"""`--set KEY=VALUE`: a search space's ranges and model size changed from the command line.

    --set batch_size=16..1024          # a range, on the scale the space had
    --set learning_rate=1e-4..1e-3:log # a range on a log scale (`:linear` for a linear one)
    --set safety_factor=0.8            # one value: a range of one
    --set schedule_type=none,step      # the schedule types searched
    --set schedule_max_batch_size=none # step schedules without a cap of their own
    --set size=student                 # the model size

The keys are `SETTABLE_KEYS`. Epochs, dataset and window have options of their own (`--epochs`,
`--dataset`, `--window`); the name, mode and metric are what `--space` picks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from search_spaces.ranges import FloatRange, IntRange
from trainables.errors import UserError

if TYPE_CHECKING:
    from search_spaces.base import SearchSpace

__all__ = ["SETTABLE_KEYS", "apply_overrides", "parse_override"]

_RANGE_KEYS = (
    "batch_size",
    "eval_multiplier",
    "safety_factor",
    "learning_rate",
    "schedule_step_size",
    "schedule_gamma",
    "schedule_max_batch_size",
    "schedule_final_batch_size",
    "schedule_num_epochs",
)
SETTABLE_KEYS: tuple[str, ...] = (*_RANGE_KEYS, "schedule_type", "size")
"""The space's fields `--set` changes."""

_OWN_OPTIONS = {"epochs": "--epochs", "dataset": "--dataset", "window": "--window"}
_SCALES = {"log": True, "linear": False}


def parse_override(item: str, space: SearchSpace) -> tuple[str, Any]:
    """One `KEY=VALUE` as the field it sets and the field's new value (not yet validated).

    Args:
        item: The option's value, e.g. `batch_size=16..1024:log`.
        space: The space it changes: a range keeps its scale unless the value names one.

    Returns:
        `(key, value)`, e.g. `("batch_size", IntRange(16, 1024, log=True))`.

    Raises:
        UserError: Naming `--set ITEM`, what is wrong and what is expected.

    Example:
        >>> from search_spaces import get_space
        >>> parse_override("batch_size=16..1024", get_space("normal"))
        ('batch_size', IntRange(low=16, high=1024, log=True))
        >>> parse_override("safety_factor=0.8", get_space("normal"))
        ('safety_factor', FloatRange(low=0.8, high=0.8, log=False))
    """
    where = f"--set {item}"
    key, equals, text = item.partition("=")
    key, text = key.strip(), text.strip()
    if not equals or not key or not text:
        raise UserError(f"{where}: expected KEY=VALUE, e.g. --set batch_size=16..1024")
    if key in _OWN_OPTIONS:
        raise UserError(f"{where}: {key} has an option of its own: {_OWN_OPTIONS[key]}")
    if key not in SETTABLE_KEYS:
        raise UserError(
            f"{where}: {key!r} is not a setting --set changes; choose from"
            f" {', '.join(SETTABLE_KEYS)}"
        )
    if key == "size":
        return key, text
    if key == "schedule_type":
        return key, tuple(t.strip() for t in text.split(","))
    if key == "schedule_max_batch_size" and text.lower() == "none":
        return key, None
    current = getattr(space, key)
    kind = FloatRange if isinstance(current, FloatRange) else IntRange
    bounds, _, scale = text.partition(":")
    if scale and scale not in _SCALES:
        raise UserError(f"{where}: the scale after ':' must be log or linear, got {scale!r}")
    low_text, dots, high_text = bounds.partition("..")
    number = float if kind is FloatRange else int
    try:
        low = number(low_text)
        high = number(high_text) if dots else low
    except ValueError:
        example = "0.3..1.0" if kind is FloatRange else "16..1024"
        what = "numbers" if kind is FloatRange else "integers"
        raise UserError(
            f"{where}: expected LOW..HIGH (or one value) of {what}, optionally :log or"
            f" :linear, e.g. {key}={example}"
        ) from None
    log = _SCALES[scale] if scale else (current.log if current is not None else False)
    return key, kind(low, high, log=log)  # type: ignore[arg-type]


def apply_overrides(space: SearchSpace, items: Sequence[str]) -> SearchSpace:
    """`space` with every `--set KEY=VALUE` of `items` applied, validated as one new space.

    Raises:
        UserError: An item that does not parse, a key given twice, or a space the changes make
            invalid (the message names the `--set` items and the field).
    """
    if not items:
        return space
    changes: dict[str, Any] = {}
    given: dict[str, str] = {}
    for item in items:
        key, value = parse_override(item, space)
        if key in given:
            raise UserError(f"--set {item}: {key} is already set by --set {given[key]}")
        changes[key], given[key] = value, item
    try:
        return space.with_overrides(**changes)
    except UserError as err:
        # The space's check names the field ("field batch_size: ..."): name the item that set it.
        items_named = [i for k, i in given.items() if f"field {k}" in str(err)]
        named = " ".join(f"--set {i}" for i in items_named or given.values())
        raise UserError(f"{named}: {err}") from None
