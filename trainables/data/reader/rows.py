"""What a reader has parsed from one file: `Rows`, columns plus the first problem of each bad
row, made into a `Capture` (or an error naming the file and line)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from trainables.data.capture import MAX_PAYLOAD_BYTES, Capture
from trainables.errors import UserError

__all__ = ["CTT_COLUMNS", "BadRowPolicy", "Rows", "check_unique_columns"]

BadRowPolicy = Literal["error", "skip"]
# The can-train-and-test columns, in CSV and parquet files alike.
CTT_COLUMNS = ("timestamp", "arbitration_id", "data_field", "attack")


def check_unique_columns(path: Path, names: list[str], *, where: str = "") -> None:
    """A column the reader uses given twice (names compared in any case) is an error: which
    one holds the data cannot be told, and reading the first silently dropped the other."""
    lowered = [name.strip().lower() for name in names]
    for column in CTT_COLUMNS:
        given = [name for name, low in zip(names, lowered, strict=True) if low == column]
        if len(given) > 1:
            raise UserError(
                f"{path}: {where}column {column} appears {len(given)} times "
                f"({', '.join(repr(name) for name in given)}); keep one"
            )


class Rows:
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

    def flag_out_of_order(self) -> None:
        """Mark rows whose timestamp is earlier than an earlier good row's: a capture is in time
        order, and a row out of it made negative inter-arrival times in the graphs' edges."""
        good = np.flatnonzero(~self.bad)
        if len(good) < 2:
            return
        stamps = self.timestamp[good]
        latest = np.maximum.accumulate(stamps)
        behind = stamps < latest
        if not behind.any():
            return
        first = int(np.argmax(behind))
        mask = np.zeros(self.num_rows, dtype=bool)
        mask[good[behind]] = True
        self.flag(
            mask,
            f"timestamp {float(stamps[first])!r} is earlier than an earlier line's"
            f" ({float(latest[first])!r});"
            " a capture is in time order",
        )

    def to_capture(self, on_bad_rows: BadRowPolicy) -> Capture:
        self.flag_out_of_order()
        num_dropped = int(self.bad.sum()) + len(self.extra_bad_lines)
        if on_bad_rows == "error":
            problems = [(self.first_line + row, why) for row, why in self.problem_rows]
            problems += self.extra_bad_lines
            if problems:
                # The first line's first problem found (a row's later checks see its emptied
                # or defaulted fields).
                line, why = min(problems, key=lambda problem: problem[0])
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
