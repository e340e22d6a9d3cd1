"""The two CSV formats: can-train-and-test (a header, hex fields) and HCRL Car-Hacking (rows of
varying length, header optional), told apart by the first line."""

from __future__ import annotations

import contextlib
import gzip
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from trainables.data.capture import MAX_PAYLOAD_BYTES
from trainables.data.reader.columns import (
    hex_digits_value,
    parse_common,
    parse_payload_hex,
    to_bool,
    to_int,
)
from trainables.data.reader.rows import CTT_COLUMNS, Rows, check_unique_columns
from trainables.errors import UserError

__all__ = ["read_csv"]


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


def read_csv(path: Path) -> Rows:
    """A `.csv` or `.csv.gz` capture in whichever format its first line shows."""
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
        check_unique_columns(path, fields, where="line 1: ")
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
    bad_lines: _BadLineCollector | None = None,
) -> pa.Table:
    """The file's table; rows with the wrong number of fields go to `bad_lines` (if given)."""

    def read() -> pa.Table:
        # compression="detect" picks gzip from the suffix; the C++ reader is multi-threaded.
        with pa.input_stream(str(path), compression="detect") as stream:
            return pacsv.read_csv(
                stream,
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )

    try:
        if bad_lines is None:
            return read()
        with _undecodable_rows() as undecodable:
            try:
                return read()
            except pa.ArrowInvalid:
                if not undecodable:
                    raise
        # A row with the wrong number of fields held bytes that are not UTF-8: pyarrow could not
        # hand it to `bad_lines` as text, and failed the file. Once more, every byte a character.
        read_options.encoding = bad_lines.encoding = "latin-1"
        bad_lines.lines.clear()
        return read()
    except (pa.ArrowInvalid, OSError, EOFError) as err:
        message = str(err).splitlines()[0]
        if any(w in message.lower() for w in ("gzip", "zlib", "truncated", "compress")):
            raise UserError(
                f"{path}: cannot decompress: truncated or corrupt gzip ({message})"
            ) from None
        raise UserError(f"{path}: cannot parse as CSV ({message})") from None


@contextlib.contextmanager
def _undecodable_rows() -> Iterator[list[BaseException]]:
    """The `UnicodeDecodeError`s pyarrow meets handing a row to an `invalid_row_handler` (it
    reports them as unraisable, an "Exception ignored in" traceback on stderr): collected
    instead, while the context lasts."""
    caught: list[BaseException] = []
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, UnicodeDecodeError):
            caught.append(unraisable.exc_value)
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield caught
    finally:
        sys.unraisablehook = previous


class _BadLineCollector:
    """pyarrow `invalid_row_handler`: rows with the wrong number of fields are noted, skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[tuple[int, str]] = []
        self.encoding = "utf-8"  # the file's, as the reader decodes it

    def __call__(self, row: pacsv.InvalidRow) -> str:
        # The multi-threaded parser does not know line numbers; find the text instead (this
        # path only runs for broken rows).
        line = (
            row.number
            if row.number is not None
            else _line_of(self.path, row.text, encoding=self.encoding)
        )
        self.lines.append(
            (
                line,
                f"expected {row.expected_columns} fields, got {row.actual_columns} "
                f"({row.text[:60]!r})",
            )
        )
        return "skip"


def _line_of(path: Path, text: str, *, encoding: str) -> int:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding=encoding, errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if line.rstrip("\r\n") == text:
                return number
    return 0


def _text(rows: Rows, column: pa.ChunkedArray, name: str) -> pa.Array:
    """A column read as bytes, as text. Read as strings, one byte that is not UTF-8 failed the
    whole file, without a line number. Every field of these formats is ASCII: a row with a byte
    outside it is bad (dropped under `--on-bad-rows skip`), and its value is emptied."""
    values = column.combine_chunks()
    try:
        text = values.cast(pa.string())  # checks UTF-8
    except pa.ArrowInvalid:  # not all UTF-8: find the rows that hold a byte >= 0x80
        _, offset_buffer, data = values.buffers()
        offsets = np.frombuffer(offset_buffer, dtype=np.int32)[
            values.offset : values.offset + len(values) + 1
        ]
        high = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]] >= 0x80
        bad = np.zeros(len(values), dtype=bool)
        bad[np.searchsorted(offsets, offsets[0] + np.flatnonzero(high), side="right") - 1] = True
    else:
        ascii_ = pc.string_is_ascii(text)
        if ascii_.null_count == 0 and pc.all(ascii_).as_py() is not False:
            return text
        bad = ~to_bool(ascii_)
    rows.flag(bad, f"{name} holds bytes that are not ASCII text")
    return pc.if_else(pa.array(bad), pa.scalar(b"", pa.binary()), values).cast(pa.string())


def _read_ctt_csv(path: Path, header: list[str]) -> Rows:
    names = [h.strip().lower() for h in header]
    bad_lines = _BadLineCollector(path)
    table = _csv_table(
        path,
        pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
        pacsv.ParseOptions(invalid_row_handler=bad_lines),
        pacsv.ConvertOptions(
            column_types={name: pa.binary() for name in names},
            include_columns=list(CTT_COLUMNS),
            strings_can_be_null=False,
        ),
        bad_lines,
    )
    rows = Rows(path, table.num_rows, first_line=2)
    rows.extra_bad_lines = bad_lines.lines
    col = {name: _text(rows, table.column(name), name) for name in CTT_COLUMNS}
    parse_common(rows, col["timestamp"], col["arbitration_id"])
    parse_payload_hex(rows, col["data_field"])
    attack = col["attack"]
    is_one = to_bool(pc.equal(pc.utf8_trim_whitespace(attack), "1"))
    is_zero = to_bool(pc.equal(pc.utf8_trim_whitespace(attack), "0"))
    rows.flag(~(is_one | is_zero), values=attack, what="attack must be 0 or 1, got")
    rows.attack = is_one
    return rows


def _read_hcrl_csv(path: Path, *, has_header: bool) -> Rows:
    # One column per line (a delimiter that never occurs), then split in Arrow: rows have a
    # varying number of fields, which a CSV reader with a fixed schema would reject.
    table = _csv_table(
        path,
        pacsv.ReadOptions(column_names=["line"], skip_rows=int(has_header), block_size=1 << 24),
        pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False),
        pacsv.ConvertOptions(column_types={"line": pa.binary()}, strings_can_be_null=False),
    )
    rows = Rows(path, table.num_rows, first_line=1 + int(has_header))
    lines = _text(rows, table.column("line"), "the row")
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

    parse_common(rows, field(starts), field(starts + 1))
    dlc_text = field(starts + 2)
    dlc, dlc_bad = to_int(dlc_text)
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
    is_t = to_bool(pc.equal(flag_text, "T"))
    rows.flag(
        ~short & ~(is_t | to_bool(pc.equal(flag_text, "R"))),
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
    values, lengths, bad_chars = hex_digits_value(byte_text)
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
