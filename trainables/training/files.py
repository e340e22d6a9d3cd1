"""What a run writes: values made JSON-ready, and JSON files written atomically."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["json_text", "plain", "write_json"]


def plain(value: Any) -> Any:
    """`value` with paths as strings, tuples as lists and pydantic models as dicts."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return value


def json_text(payload: Any, *, indent: int | None = None) -> str:
    """`payload` as strict JSON, keys sorted: a NaN or infinite number (a loss that diverged) is
    null, where `json.dumps` wrote a bare `NaN` that JSON readers reject."""
    return json.dumps(
        _finite(payload), indent=indent, sort_keys=True, default=str, allow_nan=False
    )


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` as indented, key-sorted JSON, atomically: a reader sees the old
    file or the new one, never half (a run killed while writing leaves no half file that reads
    as a finished run)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers
    tmp.write_text(json_text(payload, indent=2) + "\n")
    os.replace(tmp, path)
