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

from trainables.data.reader.read import CAPTURE_SUFFIXES, is_capture_file, read_capture
from trainables.data.reader.rows import BadRowPolicy

__all__ = ["CAPTURE_SUFFIXES", "BadRowPolicy", "is_capture_file", "read_capture"]
