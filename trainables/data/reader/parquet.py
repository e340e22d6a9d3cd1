"""Parquet captures: the can-train-and-test columns, IDs as integers or hex strings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trainables.data.reader.columns import parse_common, parse_payload_hex
from trainables.data.reader.rows import CTT_COLUMNS, Rows
from trainables.errors import UserError

__all__ = ["read_parquet"]


def read_parquet(path: Path) -> Rows:
    """A `.parquet` capture with the can-train-and-test columns (any case)."""
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
    rows = Rows(path, table.num_rows, first_line=1)
    can_id = col["arbitration_id"]
    if pa.types.is_integer(can_id.type):
        ids = can_id.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        rows.flag((ids < 0) | (ids >= 1 << 29), values=can_id, what="arbitration_id out of range:")
        rows.can_id = ids
        stamps = pc.cast(col["timestamp"], pa.string())
        parse_common(rows, stamps, None)
    else:
        parse_common(rows, pc.cast(col["timestamp"], pa.string()), pc.cast(can_id, pa.string()))
    payload = col["data_field"]
    if pa.types.is_binary(payload.type) or pa.types.is_large_binary(payload.type):
        payload = pc.binary_to_hex(payload) if hasattr(pc, "binary_to_hex") else payload
    parse_payload_hex(rows, pc.cast(payload, pa.string()))
    attack = pc.cast(col["attack"], pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    rows.flag(
        (attack != 0) & (attack != 1), values=col["attack"], what="attack must be 0 or 1, got"
    )
    rows.attack = attack == 1
    return rows
