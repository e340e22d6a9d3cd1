"""Read CAN captures (`.csv`, `.csv.gz`, `.parquet`) into columnar `Capture`s, vectorised.

Two formats are recognised from the first line of a file:

- can-train-and-test: header `timestamp,arbitration_id,data_field,attack`, ID and payload in hex
  (payload 0-8 bytes, so an even number of hex digits, at most 16), attack 0 or 1.
- HCRL Car-Hacking: `Timestamp,CAN ID,DLC,DATA[0],...,DATA[DLC-1],Flag` with Flag `R` (regular)
  or `T` (injected); rows have a varying number of fields; the header line is optional.

Every value is checked. A bad row raises `UserError` naming the file, the line and what is wrong;
with `on_bad_rows="skip"` bad rows are dropped instead and counted in `Capture.num_dropped_rows`
(and logged), never silently.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trainables.data.capture import MAX_PAYLOAD_BYTES, Capture
from trainables.errors import UserError

__all__ = ["CAPTURE_SUFFIXES", "BadRowPolicy", "is_capture_file", "read_capture"]

logger = logging.getLogger(__name__)

BadRowPolicy = Literal["error", "skip"]
CAPTURE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
CTT_COLUMNS = ("timestamp", "arbitration_id", "data_field", "attack")
MAX_ID_HEX_DIGITS = 8  # 29-bit extended IDs
_FLOAT_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"

# Hex digit -> value, 255 for anything that is not a hex digit.
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _i


def is_capture_file(path: Path) -> bool:
    """Whether `path` has one of the capture suffixes (`.csv`, `.csv.gz`, `.parquet`)."""
    return path.name.lower().endswith(CAPTURE_SUFFIXES)


def read_capture(path: str | Path, *, on_bad_rows: BadRowPolicy = "error") -> Capture:
    """Read one capture file.

    Args:
        path: A `.csv`, `.csv.gz` or `.parquet` file in either recognised format.
        on_bad_rows: `"error"` (default) raises on the first bad row; `"skip"` drops bad rows,
            counts them in `Capture.num_dropped_rows` and logs the count.

    Returns:
        The messages in file order.

    Raises:
        UserError: The file is missing, empty, unreadable (e.g. a truncated gzip), lacks a
            column, or (with `on_bad_rows="error"`) has a bad row; the message names the file
            and line.
    """
    path = Path(path)
    if on_bad_rows not in ("error", "skip"):
        raise UserError(f"--on-bad-rows must be 'error' or 'skip', got {on_bad_rows!r}")
    if not path.is_file():
        raise UserError(f"{path}: no such capture file")
    if not is_capture_file(path):
        raise UserError(
            f"{path}: not a capture file (expected one of {', '.join(CAPTURE_SUFFIXES)})"
        )
    rows = _read_parquet(path) if path.name.lower().endswith(".parquet") else _read_csv(path)
    capture = rows.to_capture(on_bad_rows)
    if capture.num_dropped_rows:
        logger.warning("%s: dropped %d bad rows", path, capture.num_dropped_rows)
    return capture


class _Rows:
    """Parsed columns plus, per row, the first problem found (if any)."""

    def __init__(self, path: Path, num_rows: int, *, first_line: int) -> None:
        self.path = path
        self.num_rows = num_rows
        self.first_line = first_line  # file line number of row 0
        self.problem_rows: list[tuple[int, str]] = []  # (row, what is wrong) per failed check
        self.bad = np.zeros(num_rows, dtype=bool)
        self.timestamp = np.zeros(num_rows, dtype=np.float64)
        self.can_id = np.zeros(num_rows, dtype=np.int64)
        self.dlc = np.zeros(num_rows, dtype=np.uint8)
        self.payload = np.zeros((num_rows, MAX_PAYLOAD_BYTES), dtype=np.uint8)
        self.attack = np.zeros(num_rows, dtype=bool)
        self.extra_bad_lines: list[tuple[int, str]] = []  # rows the CSV parser itself rejected

    def flag(
        self,
        mask: np.ndarray,
        describe: str | None = None,
        *,
        values: pa.Array | None = None,
        what: str = "",
    ) -> None:
        """Mark rows in `mask` bad; remember the first one with a readable reason."""
        if not mask.any():
            return
        self.bad |= mask
        row = int(np.argmax(mask))
        if describe is None:
            value = values[row].as_py() if values is not None else None
            describe = f"{what} {value!r}"
        self.problem_rows.append((row, describe))

    def to_capture(self, on_bad_rows: BadRowPolicy) -> Capture:
        num_dropped = int(self.bad.sum()) + len(self.extra_bad_lines)
        if on_bad_rows == "error":
            problems = [(self.first_line + row, why) for row, why in self.problem_rows]
            problems += self.extra_bad_lines
            if problems:
                line, why = min(problems)
                raise UserError(
                    f"{self.path}: line {line}: {why} "
                    "(fix the file, or pass --on-bad-rows skip to drop bad rows)"
                )
        if self.num_rows - int(self.bad.sum()) == 0:
            raise UserError(
                f"{self.path}: no valid messages (file has no data rows)"
                if num_dropped == 0
                else f"{self.path}: all {num_dropped} rows are bad"
            )
        keep = ~self.bad
        capture = Capture.from_arrays(
            str(self.path),
            timestamp=self.timestamp[keep],
            can_id=self.can_id[keep],
            dlc=self.dlc[keep],
            payload=self.payload[keep],
            attack=self.attack[keep],
        )
        return replace(capture, num_dropped_rows=num_dropped) if num_dropped else capture


# --- file formats -------------------------------------------------------------------------


def _first_line(path: Path) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            line = f.readline(4096)
    except (OSError, EOFError, zlib.error) as err:
        raise UserError(f"{path}: cannot read ({err})") from None
    if not line.strip():
        raise UserError(f"{path}: empty file (expected a CAN capture)")
    return line.decode("utf-8", errors="replace").strip().lstrip("\ufeff")


def _read_csv(path: Path) -> _Rows:
    header = _first_line(path)
    fields = [f.strip() for f in header.split(",")]
    lowered = [f.lower() for f in fields]
    if "arbitration_id" in lowered or "data_field" in lowered:
        missing = [c for c in CTT_COLUMNS if c not in lowered]
        if missing:
            raise UserError(
                f"{path}: line 1: missing column(s) {', '.join(missing)} "
                f"(expected header {','.join(CTT_COLUMNS)}, got {header!r})"
            )
        return _read_ctt_csv(path, fields)
    if _looks_like_hcrl(fields):
        has_header = not _is_float(fields[0])
        return _read_hcrl_csv(path, has_header=has_header)
    raise UserError(
        f"{path}: line 1: unrecognised format; expected a header "
        f"'{','.join(CTT_COLUMNS)}' (can-train-and-test) or HCRL rows "
        f"'Timestamp,CAN ID,DLC,DATA...,Flag', got {header[:80]!r}"
    )


def _looks_like_hcrl(fields: list[str]) -> bool:
    if [f.lower() for f in fields[:3]] == ["timestamp", "can id", "dlc"]:
        return True
    return len(fields) >= 4 and _is_float(fields[0]) and fields[-1] in ("R", "T")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_table(
    path: Path,
    read_options: pacsv.ReadOptions,
    parse_options: pacsv.ParseOptions,
    convert_options: pacsv.ConvertOptions,
) -> pa.Table:
    try:
        # compression="detect" picks gzip from the suffix; the C++ reader is multi-threaded.
        with pa.input_stream(str(path), compression="detect") as stream:
            return pacsv.read_csv(
                stream,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
    except (pa.ArrowInvalid, OSError, EOFError) as err:
        message = str(err).splitlines()[0]
        if any(w in message.lower() for w in ("gzip", "zlib", "truncated", "compress")):
            raise UserError(
                f"{path}: cannot decompress: truncated or corrupt gzip ({message})"
            ) from None
        raise UserError(f"{path}: cannot parse as CSV ({message})") from None


class _BadLineCollector:
    """pyarrow `invalid_row_handler`: rows with the wrong number of fields are noted, skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[tuple[int, str]] = []

    def __call__(self, row: pacsv.InvalidRow) -> str:
        # The multi-threaded parser does not know line numbers; find the text instead (this
        # path only runs for broken rows).
        line = row.number if row.number is not None else _line_of(self.path, row.text)
        self.lines.append(
            (
                line,
                f"expected {row.expected_columns} fields, got {row.actual_columns} "
                f"({row.text[:60]!r})",
            )
        )
        return "skip"


def _line_of(path: Path, text: str) -> int:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if line.rstrip("\r\n") == text:
                return number
    return 0


def _read_ctt_csv(path: Path, header: list[str]) -> _Rows:
    names = [h.strip().lower() for h in header]
    bad_lines = _BadLineCollector(path)
    table = _csv_table(
        path,
        pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
        pacsv.ParseOptions(invalid_row_handler=bad_lines),
        pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            include_columns=list(CTT_COLUMNS),
            strings_can_be_null=False,
        ),
    )
    rows = _Rows(path, table.num_rows, first_line=2)
    rows.extra_bad_lines = bad_lines.lines
    col = {name: table.column(name).combine_chunks() for name in CTT_COLUMNS}
    _parse_common(rows, col["timestamp"], col["arbitration_id"])
    _parse_payload_hex(rows, col["data_field"])
    attack = col["attack"]
    is_one = _to_bool(pc.equal(pc.utf8_trim_whitespace(attack), "1"))
    is_zero = _to_bool(pc.equal(pc.utf8_trim_whitespace(attack), "0"))
    rows.flag(~(is_one | is_zero), values=attack, what="attack must be 0 or 1, got")
    rows.attack = is_one
    return rows


def _read_hcrl_csv(path: Path, *, has_header: bool) -> _Rows:
    # One column per line (a delimiter that never occurs), then split in Arrow: rows have a
    # varying number of fields, which a CSV reader with a fixed schema would reject.
    table = _csv_table(
        path,
        pacsv.ReadOptions(column_names=["line"], skip_rows=int(has_header), block_size=1 << 24),
        pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False),
        pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
    )
    lines = table.column("line").combine_chunks()
    rows = _Rows(path, len(lines), first_line=1 + int(has_header))
    parts = pc.split_pattern(lines, ",")
    offsets = np.asarray(parts.offsets)
    flat = pc.utf8_trim_whitespace(parts.flatten())
    num_fields = np.diff(offsets)
    rows.flag(num_fields < 4, "expected at least 4 fields (Timestamp,CAN ID,DLC,...,Flag)")
    starts = np.minimum(offsets[:-1], max(len(flat) - 1, 0))
    ends = np.maximum(offsets[1:] - 1, 0)
    short = num_fields < 4

    def field(index: np.ndarray) -> pa.Array:
        return flat.take(pa.array(np.where(short, 0, index)))

    _parse_common(rows, field(starts), field(starts + 1))
    dlc_text = field(starts + 2)
    dlc, dlc_bad = _to_int(dlc_text)
    rows.flag(
        ~short & (dlc_bad | (dlc < 0) | (dlc > MAX_PAYLOAD_BYTES)),
        values=dlc_text,
        what="DLC must be an integer 0-8, got",
    )
    dlc = np.clip(np.where(dlc_bad, 0, dlc), 0, MAX_PAYLOAD_BYTES)
    rows.flag(
        ~short & ~dlc_bad & (num_fields != dlc + 4), "number of data bytes does not match DLC"
    )
    flag_text = field(ends)
    is_t = _to_bool(pc.equal(flag_text, "T"))
    rows.flag(
        ~short & ~(is_t | _to_bool(pc.equal(flag_text, "R"))),
        values=flag_text,
        what="Flag must be R or T, got",
    )
    rows.attack = is_t

    # Data bytes: fields 3 .. 3 + dlc - 1 of each well-formed row.
    usable = ~rows.bad
    counts = np.where(usable, dlc, 0)
    byte_row = np.repeat(np.arange(len(lines)), counts)
    byte_col = np.arange(len(byte_row)) - np.repeat(np.cumsum(counts) - counts, counts)
    byte_text = flat.take(pa.array(offsets[:-1][byte_row] + 3 + byte_col))
    values, lengths, bad_chars = _hex_digits_value(byte_text)
    bad_byte = bad_chars | (lengths < 1) | (lengths > 2)
    if bad_byte.any():
        mask = np.zeros(len(lines), dtype=bool)
        mask[byte_row[bad_byte]] = True
        first = int(np.argmax(bad_byte))
        rows.flag(
            mask & ~rows.bad, f"data byte {byte_text[first].as_py()!r} is not 1-2 hex digits"
        )
    rows.payload[byte_row, byte_col] = values.astype(np.uint8)
    rows.dlc = dlc.astype(np.uint8)
    return rows


def _read_parquet(path: Path) -> _Rows:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"{path}: cannot read parquet ({str(err).splitlines()[0]})") from None
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
    rows = _Rows(path, table.num_rows, first_line=1)
    can_id = col["arbitration_id"]
    if pa.types.is_integer(can_id.type):
        ids = can_id.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        rows.flag((ids < 0) | (ids >= 1 << 29), values=can_id, what="arbitration_id out of range:")
        rows.can_id = ids
        stamps = pc.cast(col["timestamp"], pa.string())
        _parse_common(rows, stamps, None)
    else:
        _parse_common(rows, pc.cast(col["timestamp"], pa.string()), pc.cast(can_id, pa.string()))
    payload = col["data_field"]
    if pa.types.is_binary(payload.type) or pa.types.is_large_binary(payload.type):
        payload = pc.binary_to_hex(payload) if hasattr(pc, "binary_to_hex") else payload
    _parse_payload_hex(rows, pc.cast(payload, pa.string()))
    attack = pc.cast(col["attack"], pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    rows.flag(
        (attack != 0) & (attack != 1), values=col["attack"], what="attack must be 0 or 1, got"
    )
    rows.attack = attack == 1
    return rows


# --- columns ------------------------------------------------------------------------------


def _parse_common(rows: _Rows, timestamp: pa.Array, can_id: pa.Array | None) -> None:
    rows.timestamp, bad_time = _to_float(timestamp)
    rows.flag(bad_time, values=timestamp, what="timestamp is not a number:")
    if can_id is None:
        return
    values, lengths, bad_chars = _hex_digits_value(can_id)
    bad = bad_chars | (lengths < 1) | (lengths > MAX_ID_HEX_DIGITS)
    rows.flag(bad, values=can_id, what="arbitration_id is not a hex CAN ID (1-8 hex digits):")
    rows.can_id = np.where(bad, 0, values)


def _parse_payload_hex(rows: _Rows, data_field: pa.Array) -> None:
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


def _hex_digits_value(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _to_int(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    try:
        values = pc.cast(array, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        valid = pc.fill_null(pc.match_substring_regex(array, r"^\s*[+-]?\d{1,9}\s*$"), False)
        values = pc.cast(pc.if_else(valid, array, pa.scalar(None, pa.string())), pa.int64())
    bad = np.asarray(values.is_null().to_numpy(zero_copy_only=False))
    return values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64), bad


def _to_bool(array: pa.Array) -> np.ndarray:
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
