"""Parquet captures: the can-train-and-test columns, IDs as integers or hex strings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trainables.data.reader.columns import parse_common, parse_payload_hex, to_bool
from trainables.data.reader.rows import CTT_COLUMNS, Rows, check_unique_columns
from trainables.errors import UserError

__all__ = ["read_parquet"]


def read_parquet(path: Path) -> Rows:
    """A `.parquet` capture with the can-train-and-test columns (any case)."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"{path}: cannot read parquet ({str(err).splitlines()[0]})") from None
    check_unique_columns(path, table.column_names)
    names = {n.lower(): n for n in table.column_names}
    missing = [c for c in CTT_COLUMNS if c not in names]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)} "
            f"(expected {', '.join(CTT_COLUMNS)}, got {', '.join(table.column_names)})"
        )
    if table.num_rows == 0:
        raise UserError(f"{path}: empty file (no rows)")
    col = {c: table.column(names[c]).combine_chunks() for c in CTT_COLUMNS}
    for name, array in col.items():
        if not _readable(array.type):
            raise UserError(
                f"{path}: column {names[name]} has type {array.type}; expected numbers or text"
            )
    rows = Rows(path, table.num_rows, first_line=1)
    stamps = _text(col["timestamp"], names["timestamp"], path)
    can_id = col["arbitration_id"]
    if _numeric(can_id.type):  # IDs as numbers: exact in float64 up to the 29 bits of an ID
        ids = pc.cast(can_id, pa.float64(), safe=False).fill_null(np.nan).to_numpy()
        with np.errstate(invalid="ignore"):
            bad = ~((ids >= 0) & (ids < 1 << 29) & (ids == np.floor(ids)))
        rows.flag(bad, values=can_id, what="arbitration_id is not a CAN ID (0 to 2^29-1):")
        rows.can_id = np.where(bad, 0, np.nan_to_num(ids)).astype(np.int64)
        parse_common(rows, stamps, None)
    else:
        parse_common(rows, stamps, _text(can_id, names["arbitration_id"], path))
    payload = col["data_field"]
    kind = payload.type.value_type if pa.types.is_dictionary(payload.type) else payload.type
    if _numeric(kind) or pa.types.is_boolean(kind):
        # A number has no byte length (00FF and FF are different payloads), and its decimal
        # digits were read as hex: 1234 became the bytes 12 34.
        raise UserError(
            f"{path}: column {names['data_field']} has type {kind}; expected the "
            "payload as hex text (e.g. '7F846900') or as bytes"
        )
    if _binary(payload.type) and not _all_hex_text(payload):
        payload = _hex_of_bytes(payload)  # raw payload bytes, not their hex digits
    parse_payload_hex(rows, _text(payload, names["data_field"], path))
    attack = col["attack"]
    if _numeric(attack.type) or pa.types.is_boolean(attack.type):
        number = pc.cast(attack, pa.float64(), safe=False).fill_null(np.nan).to_numpy()
    else:
        text = _text(attack, names["attack"], path)
        number = np.select(
            [to_bool(pc.equal(pc.utf8_trim_whitespace(text), v)) for v in ("0", "1")],
            [0.0, 1.0],
            np.nan,
        )
    rows.flag((number != 0) & (number != 1), values=attack, what="attack must be 0 or 1, got")
    rows.attack = number == 1
    return rows


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _binary(kind: pa.DataType) -> bool:
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


def _readable(kind: pa.DataType) -> bool:
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or _binary(kind)
    return text or _numeric(kind) or pa.types.is_boolean(kind) or pa.types.is_dictionary(kind)


def _text(array: pa.Array, name: str = "", path: Path | None = None) -> pa.Array:
    """A column as strings, numbers written out (bytes must be UTF-8 text)."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    try:
        return pc.cast(array, pa.string())
    except pa.ArrowInvalid:
        raise UserError(f"{path}: column {name} holds bytes that are not text") from None


def _all_hex_text(payload: pa.Array) -> bool:
    """Whether a binary payload column holds hex digits as text (a string column written
    without its UTF-8 annotation) rather than the payload's bytes."""
    try:
        text = payload.cast(pa.string())
    except pa.ArrowInvalid:  # not UTF-8: bytes
        return False
    return pc.all(pc.match_substring_regex(text, r"^[0-9A-Fa-f]*$")).as_py() is not False


def _hex_of_bytes(payload: pa.Array) -> pa.Array:
    """Each value's bytes as upper-case hex digits, vectorised."""
    array = payload.fill_null(b"").cast(pa.binary())
    _, offset_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int32)[
        array.offset : array.offset + len(array) + 1
    ]
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    hexed = np.empty(2 * len(data), dtype=np.uint8)
    hexed[0::2], hexed[1::2] = _HEX_DIGITS[data >> 4], _HEX_DIGITS[data & 15]
    starts = ((offsets - offsets[0]) * 2).astype(np.int32)
    return pa.StringArray.from_buffers(len(array), pa.py_buffer(starts), pa.py_buffer(hexed))


_HEX_DIGITS = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
