"""`read_capture`: one capture file, in whichever of the recognised formats, into a `Capture`."""

from __future__ import annotations

import logging
from pathlib import Path

from trainables.data.capture import Capture
from trainables.data.reader.csv_formats import read_csv
from trainables.data.reader.parquet import read_parquet
from trainables.data.reader.rows import BadRowPolicy
from trainables.errors import UserError

__all__ = ["CAPTURE_SUFFIXES", "is_capture_file", "read_capture"]

logger = logging.getLogger(__name__)

CAPTURE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


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
    rows = read_parquet(path) if path.name.lower().endswith(".parquet") else read_csv(path)
    capture = rows.to_capture(on_bad_rows)
    if capture.num_dropped_rows:
        logger.warning("%s: dropped %d bad rows", path, capture.num_dropped_rows)
    return capture
