"""On-disk cache of built graphs and vocabularies, keyed by what they were built from.

A key hashes the input files (resolved path, size, mtime), the window, stride, vocabulary,
bad-row policy and `FORMAT_VERSION`: a changed input gives a new key and so a rebuild. Entries
are written to a temporary file in the cache folder and renamed into place, so two trials
building the same entry at once cannot leave a torn file (the last rename wins, both valid).
Entries are uncompressed `.npz` files loaded with `allow_pickle=False`: a cache file can never
run code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from trainables.data.graphs import GraphArrays
from trainables.errors import UserError

__all__ = ["FORMAT_VERSION", "GraphCache", "default_cache_dir", "file_signature"]

logger = logging.getLogger(__name__)

# What a key's graphs depend on besides its parts: the reader's and builder's rules. Bumped when
# they change what a file reads as. 2: a row whose timestamp is earlier than an earlier row's is
# a bad row (an entry built before could hold graphs with negative inter-arrival times).
FORMAT_VERSION = 2
_GRAPH_FIELDS = ("x", "edge_index", "edge_attr", "y", "node_ptr", "edge_ptr")


def default_cache_dir() -> Path:
    """`$BATCH_HPO_CACHE`, else `$XDG_CACHE_HOME/batch-hpo`, else `~/.cache/batch-hpo`."""
    if env := os.environ.get("BATCH_HPO_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "batch-hpo"


def file_signature(files: Iterable[Path]) -> list[tuple[str, int, int]]:
    """(resolved path, size, mtime in ns) of each file: what a cache key depends on."""
    signature = []
    for f in files:
        stat = f.stat()
        signature.append((str(f.resolve()), stat.st_size, stat.st_mtime_ns))
    return signature


class GraphCache:
    """Graphs and vocabularies stored under `root/graphs`, one file per key.

    Args:
        root: The cache folder (created on first write).

    Example:
        >>> import tempfile
        >>> cache = GraphCache(Path(tempfile.mkdtemp()))
        >>> key = cache.key(kind="demo", window=100)
        >>> cache.load_graphs(key) is None
        True
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for folder in (self.root, self.root / "graphs"):
            if folder.exists() and not folder.is_dir():
                raise UserError(
                    f"graph cache {folder} is a file, not a folder; give --cache-dir a folder"
                    " (or --no-cache)"
                )

    @staticmethod
    def key(**parts: Any) -> str:
        """A stable hash of the JSON of `parts` plus the format version."""
        payload = json.dumps({"format_version": FORMAT_VERSION, **parts}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def _path(self, key: str) -> Path:
        return self.root / "graphs" / f"{key}.npz"

    def load_graphs(self, key: str) -> tuple[GraphArrays, dict[str, Any]] | None:
        """The graphs and metadata stored under `key`, or None (missing or unreadable)."""
        entry = self._load(key)
        if entry is None:
            return None
        graphs = GraphArrays(**{f: entry[f] for f in _GRAPH_FIELDS})
        return graphs, json.loads(str(entry["meta"]))

    def save_graphs(self, key: str, graphs: GraphArrays, meta: dict[str, Any]) -> None:
        entry: dict[str, np.ndarray] = {f: getattr(graphs, f) for f in _GRAPH_FIELDS}
        entry["meta"] = np.array(json.dumps(meta))
        self._save(key, entry)

    def load_array(self, key: str) -> np.ndarray | None:
        entry = self._load(key)
        return None if entry is None else entry["array"]

    def save_array(self, key: str, array: np.ndarray) -> None:
        self._save(key, {"array": np.ascontiguousarray(array)})

    def _load(self, key: str) -> dict[str, np.ndarray] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except Exception as err:  # any unreadable entry is a miss: it is rebuilt and replaced
            logger.warning("graph cache entry %s is unreadable (%s); rebuilding", path, err)
            return None

    def _save(self, key: str, entry: dict[str, np.ndarray]) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}.", suffix=".tmp")
        except OSError as err:
            # The graphs are built: the run goes on without caching them (a PermissionError
            # traceback before, on a read-only or someone else's cache folder).
            _warn_unwritable(path.parent, str(err.strerror or err))
            return
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, allow_pickle=False, **entry)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@functools.cache
def _warn_unwritable(folder: Path, reason: str) -> None:
    """One warning per folder and process: a build writes a vocabulary and each split's graphs,
    and a warning each was the same line up to five times."""
    logger.warning(
        "graph cache %s cannot be written (%s); graphs are built but not cached"
        " (pass --no-cache, or --cache-dir a folder you can write)",
        folder,
        reason,
    )
