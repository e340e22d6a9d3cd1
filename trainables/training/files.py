"""What a run writes: values made JSON-ready, and JSON files written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["plain", "write_json"]


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


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` as indented, key-sorted JSON, atomically: a reader sees the old
    file or the new one, never half (a run killed while writing leaves no half file that reads
    as a finished run)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
