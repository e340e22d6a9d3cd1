"""Arrow string columns to NumPy values, vectorised, with a per-row mask of bad values."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trainables.data.capture import MAX_PAYLOAD_BYTES
from trainables.data.reader.rows import Rows

__all__ = ["hex_digits_value", "parse_common", "parse_payload_hex", "to_bool", "to_int"]

MAX_ID_HEX_DIGITS = 8  # 29-bit extended IDs
_FLOAT_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"

# Hex digit -> value, 255 for anything that is not a hex digit.
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _i


MAX_TIMESTAMP_S = 1e13  # 300,000 years


def parse_common(rows: Rows, timestamp: pa.Array, can_id: pa.Array | None) -> None:
    """Timestamps (numbers) and, unless None, hex CAN IDs into `rows`, bad values flagged."""
    rows.timestamp, bad_time = _to_float(timestamp)
    rows.flag(bad_time, values=timestamp, what="timestamp is not a number:")
    # Seconds (a Unix time is about 1.7e9). One stamp like 1e300 made the inter-arrival edge
    # features overflow float32: NaN losses, and a run that still exited 0.
    rows.flag(
        ~bad_time & (np.abs(rows.timestamp) >= MAX_TIMESTAMP_S),
        values=timestamp,
        what=f"timestamp is out of range (seconds, |t| < {MAX_TIMESTAMP_S:g}):",
    )
    if can_id is None:
        return
    values, lengths, bad_chars = hex_digits_value(can_id)
    bad = bad_chars | (lengths < 1) | (lengths > MAX_ID_HEX_DIGITS)
    rows.flag(bad, values=can_id, what="arbitration_id is not a hex CAN ID (1-8 hex digits):")
    rows.can_id = np.where(bad, 0, values)


def parse_payload_hex(rows: Rows, data_field: pa.Array) -> None:
    """Payload hex strings (0-16 digits, even) into `rows.payload` and `rows.dlc`, vectorised."""
    offsets, digits = _string_buffers(data_field)
    lengths = np.diff(offsets)
    nibbles = _NIBBLE[digits]
    rows.flag(
        _rows_with_bad_digits(offsets, nibbles), values=data_field, what="data_field is not hex:"
    )
    rows.flag(
        lengths % 2 == 1, values=data_field, what="data_field has an odd number of hex digits:"
    )
    rows.flag(
        lengths > 2 * MAX_PAYLOAD_BYTES,
        values=data_field,
        what="data_field is longer than 8 bytes:",
    )
    for width, members in _rows_by_length(lengths):
        if width % 2 or width > 2 * MAX_PAYLOAD_BYTES or width == 0:
            continue
        grid = _digit_grid(nibbles, offsets, members, width)
        rows.payload[members, : width // 2] = (grid[:, 0::2] << 4) | grid[:, 1::2]
    rows.dlc = np.minimum(lengths // 2, MAX_PAYLOAD_BYTES).astype(np.uint8)


def _rows_by_length(lengths: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(length, row indices) for each distinct length; one gather per group keeps it vectorised."""
    if len(lengths) == 0:
        return []
    present = np.flatnonzero(np.bincount(lengths))
    if len(present) == 1:
        return [(int(present[0]), np.arange(len(lengths)))]
    return [(int(width), np.flatnonzero(lengths == width)) for width in present]


def _digit_grid(
    nibbles: np.ndarray, offsets: np.ndarray, members: np.ndarray, width: int
) -> np.ndarray:
    """The digits of rows `members` (all `width` long) as a `[len(members), width]` matrix."""
    if len(members) == len(offsets) - 1:
        return nibbles.reshape(len(members), width)  # every row has this width: no gather
    return nibbles[offsets[members, None] + np.arange(width)]


def _rows_with_bad_digits(offsets: np.ndarray, nibbles: np.ndarray) -> np.ndarray:
    bad = np.zeros(len(offsets) - 1, dtype=bool)
    positions = np.flatnonzero(nibbles == 255)
    if len(positions):
        bad[np.searchsorted(offsets, positions, side="right") - 1] = True
    return bad


def _string_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (rebased to 0) and the UTF-8 bytes of a string array, without copying rows."""
    if array.null_count:
        array = array.fill_null("")
    if pa.types.is_large_string(array.type):
        offset_type: type[np.integer] = np.int64
    else:
        array = array.cast(pa.string())
        offset_type = np.int32
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)
    offsets = offsets[array.offset : array.offset + len(array) + 1]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, dtype=np.uint8)
    )
    return offsets.astype(np.int64) - offsets[0], data[offsets[0] : offsets[-1]]


def hex_digits_value(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value of each hex string, its length, and whether it has non-hex characters.

    Strings longer than 15 digits are the caller's to reject; their value is not computed.
    """
    offsets, digits = _string_buffers(array)
    lengths = np.diff(offsets)
    nibbles = _NIBBLE[digits]
    bad = _rows_with_bad_digits(offsets, nibbles)
    values = np.zeros(len(lengths), dtype=np.int64)
    for width, members in _rows_by_length(lengths):
        if width == 0 or width > 15:
            continue
        grid = _digit_grid(nibbles, offsets, members, width).astype(np.int64)
        values[members] = grid @ (16 ** np.arange(width - 1, -1, -1, dtype=np.int64))
    return values, lengths, bad


def _to_float(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Strings to float64 with a per-row 'bad' mask (not a number, empty, NaN, infinite)."""
    try:
        values = pc.cast(array, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        valid = pc.fill_null(pc.match_substring_regex(array, _FLOAT_PATTERN), False)
        values = pc.cast(pc.if_else(valid, array, pa.scalar(None, pa.string())), pa.float64())
    result = values.fill_null(np.nan).to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(result)
    return np.where(bad, 0.0, result), bad


def to_int(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Strings to int64 with a per-row 'bad' mask (not an integer)."""
    try:
        values = pc.cast(array, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        valid = pc.fill_null(pc.match_substring_regex(array, r"^\s*[+-]?\d{1,9}\s*$"), False)
        values = pc.cast(pc.if_else(valid, array, pa.scalar(None, pa.string())), pa.int64())
    bad = np.asarray(values.is_null().to_numpy(zero_copy_only=False))
    return values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64), bad


def to_bool(array: pa.Array) -> np.ndarray:
    """A boolean Arrow array as NumPy, nulls False."""
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
