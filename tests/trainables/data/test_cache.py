from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from tests.trainables.data.test_graphs import random_capture
from trainables.data import cache as cache_module
from trainables.data.cache import GraphCache, file_signature
from trainables.data.graphs import build_graphs
from trainables.data.vocab import Vocabulary


def _write_many(root: str, seed: int) -> None:
    capture = random_capture(20_000, seed=seed)
    graphs = build_graphs([capture], Vocabulary.from_captures([capture]))
    cache = GraphCache(Path(root))
    for _ in range(15):
        cache.save_graphs("same-key", graphs, {"seed": seed})


def test_graph_cache_concurrent_writers_leave_a_valid_entry(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), seed)) for seed in (1, 2)]
    for p in procs:
        p.start()
    cache = GraphCache(tmp_path)
    seen = set()
    while any(p.is_alive() for p in procs):
        loaded = cache.load_graphs("same-key")
        if loaded is not None:
            graphs, meta = loaded
            assert graphs.num_graphs == 200  # never a torn entry
            seen.add(meta["seed"])
    for p in procs:
        p.join()
        assert p.exitcode == 0
    loaded = cache.load_graphs("same-key")
    assert loaded is not None and loaded[1]["seed"] in (1, 2)
    assert not list((tmp_path / "graphs").glob("*.tmp"))


def test_graph_cache_key_depends_on_every_part() -> None:
    base = GraphCache.key(kind="graphs", window=100, files=[("a", 1, 2)])
    assert base == GraphCache.key(files=[("a", 1, 2)], window=100, kind="graphs")
    assert base != GraphCache.key(kind="graphs", window=50, files=[("a", 1, 2)])
    assert base != GraphCache.key(kind="graphs", window=100, files=[("a", 1, 3)])


def test_graph_cache_key_depends_on_the_format_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # Entries built under the reader's earlier rules are never served after they change.
    parts = {"kind": "graphs", "window": 100, "files": [("a", 1, 2)]}
    current = GraphCache.key(**parts)
    monkeypatch.setattr(cache_module, "FORMAT_VERSION", cache_module.FORMAT_VERSION - 1)
    assert GraphCache.key(**parts) != current


def test_file_signature_tracks_size_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("1")
    first = file_signature([f])
    f.write_text("12")
    assert file_signature([f]) != first
    assert first[0][0] == str(f.resolve())


def test_graph_cache_round_trips_arrays(tmp_path: Path) -> None:
    cache = GraphCache(tmp_path)
    cache.save_array("ids", np.array([3, 1, 2]))
    loaded = cache.load_array("ids")
    assert loaded is not None and loaded.tolist() == [3, 1, 2]


def test_graph_cache_that_cannot_be_written_warns_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only or someone else's cache folder was a PermissionError traceback. Root can
    # write any folder here: the refusal is what cannot exist, so it is the one thing patched.
    cache = GraphCache(tmp_path / "cache")
    real_mkdir = Path.mkdir

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        if self.is_relative_to(cache.root):
            raise PermissionError(13, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", refuse)
    key = cache.key(kind="demo")
    with caplog.at_level(logging.WARNING, logger="trainables.data.cache"):
        cache.save_array(key, np.arange(3))
    assert cache.load_array(key) is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert "cannot be written (Permission denied); graphs are built but not cached" in message
