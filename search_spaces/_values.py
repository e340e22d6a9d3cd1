"""Type checks on values from users, where a bool is not a number."""

from __future__ import annotations

__all__ = ["is_int", "is_real"]


def is_int(value: object) -> bool:
    """Whether `value` is an integer and not a bool (`True` is an `int` to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """Whether `value` is an integer or a float and not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
