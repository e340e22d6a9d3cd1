"""Byte sizes as people write them (`"4GiB"`, `"512MB"`) and back."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from trainables.errors import UserError

__all__ = ["format_size", "parse_memory_size", "parse_size"]

_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "kib": 1 << 10,
    "mb": 1000**2,
    "mib": 1 << 20,
    "gb": 1000**3,
    "gib": 1 << 30,
    "tb": 1000**4,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]*)\s*$", re.IGNORECASE)
_HOW_TO_FIX = "write a whole number of bytes or a number with a unit, e.g. 4GiB, 512MB or 1.5GiB"
_FORMAT_UNITS = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def parse_size(text: str | int, *, option: str = "size") -> int:
    """Parse a byte size such as `"4GiB"`, `"512 MB"` or `"1048576"` into bytes.

    Units are case-insensitive: B, KB/MB/GB/TB (powers of 1000) and KiB/MiB/GiB/TiB (powers of
    1024). A fractional number is allowed when it gives whole bytes (`"1.5GiB"`).

    Args:
        text: The size; an int is taken as bytes.
        option: Where the text came from (an option or field name), for error messages.

    Returns:
        The size in bytes (>= 0).

    Raises:
        UserError: The text is not a size; the message names `option` and the text.

    Example:
        >>> parse_size("4GiB"), parse_size("512mb"), parse_size("1.5KiB")
        (4294967296, 512000000, 1536)
    """
    if isinstance(text, bool):
        raise UserError(f"{option}: expected a size, got {text!r}; {_HOW_TO_FIX}")
    if isinstance(text, int):
        if text < 0:
            raise UserError(f"{option}: a size cannot be negative, got {text}; {_HOW_TO_FIX}")
        return text
    match = _SIZE.match(text)
    unit = match.group("unit").lower() if match else ""
    if match is None or (unit and unit not in _UNITS):
        units = ", ".join(("B", "KB", "KiB", "MB", "MiB", "GB", "GiB", "TB", "TiB"))
        raise UserError(
            f"{option}: cannot read {text!r} as a size; {_HOW_TO_FIX} (units: {units})"
        )
    try:
        value = Decimal(match.group("number")) * _UNITS[unit or "b"]
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise UserError(f"{option}: cannot read {text!r} as a size; {_HOW_TO_FIX}") from exc
    if value != value.to_integral_value():
        raise UserError(f"{option}: {text!r} is not a whole number of bytes; {_HOW_TO_FIX}")
    return int(value)


def parse_memory_size(text: str, *, option: str) -> int:
    """`parse_size` for a memory budget or a device's memory, where a bare number below 1 MiB
    is taken for a missing unit: `--memory-budget 64` was 64 bytes, and the run ended "out of
    memory (tuner)", exit 0. A small size with its unit (`1KiB`) is taken as written.

    Raises:
        UserError: Not a size, or a bare number below 1 MiB (the message suggests the units).

    Example:
        >>> parse_memory_size("64MiB", option="--memory-budget")
        67108864
    """
    size = parse_size(text, option=option)
    match = _SIZE.match(text)
    if match is not None and not match.group("unit") and 0 < size < 1 << 20:
        number = match.group("number")
        raise UserError(
            f"{option} {text}: {size} bytes, too little for any batch; a unit is missing?"
            f" e.g. {number}MiB or {number}GiB"
        )
    return size


def format_size(num_bytes: int) -> str:
    """Format a byte count with the largest binary unit it reaches, to at most 2 decimals.

    Exact multiples of a unit format exactly, so `parse_size(format_size(n)) == n` for them.

    Args:
        num_bytes: The size in bytes (>= 0).

    Returns:
        For example `"4GiB"`, `"1.5MiB"` or `"100B"`.

    Raises:
        ValueError: `num_bytes` is negative.

    Example:
        >>> format_size(4 * 2**30), format_size(1536 * 2**20), format_size(100)
        ('4GiB', '1.5GiB', '100B')
    """
    if num_bytes < 0:
        raise ValueError(f"num_bytes must be >= 0, got {num_bytes=}")
    for unit, scale in _FORMAT_UNITS:
        if num_bytes >= scale:
            text = f"{num_bytes / scale:.2f}".rstrip("0").rstrip(".")
            return f"{text}{unit}"
    return f"{num_bytes}B"
