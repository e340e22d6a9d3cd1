from __future__ import annotations

import doctest
import json
import multiprocessing
import os
import re
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from trainables.batching import frontier
from trainables.batching.frontier import (
    FRONTIER_FILE_NAME,
    Frontier,
    FrontierKey,
    FrontierMemo,
    config_fingerprint,
)
from trainables.errors import UserError

KEY = FrontierKey("gat-3x64", "hcrl", "cpu", 2**30, "32-true")
BF16_KEY = FrontierKey("gat-3x64", "hcrl", "cpu", 2**30, "bf16-mixed")


def test_frontier_memo_returns_none_for_an_unknown_key(tmp_path: Path) -> None:
    assert FrontierMemo(tmp_path / FRONTIER_FILE_NAME).get(KEY) is None


def test_frontier_memo_put_then_get_round_trips_per_key(tmp_path: Path) -> None:
    memo = FrontierMemo(tmp_path / FRONTIER_FILE_NAME)
    assert memo.put(KEY, (512, 2048)) == Frontier(512, 2048)
    memo.put(BF16_KEY, Frontier(train_max=1024, eval_max=4096))
    reopened = FrontierMemo(memo.path)
    train_max, eval_max = reopened.get(KEY) or (0, 0)
    assert (train_max, eval_max) == (512, 2048)
    assert reopened.get(BF16_KEY) == Frontier(1024, 4096)


def test_frontier_memo_put_rejects_sizes_below_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="frontier batch sizes must be >= 1"):
        FrontierMemo(tmp_path / FRONTIER_FILE_NAME).put(KEY, (0, 16))


@pytest.mark.parametrize("damaged", ["x", None, 0, True, 1e30, [1, 2]])
def test_a_damaged_memo_entry_is_named_not_used(tmp_path: Path, damaged: object) -> None:
    memo = FrontierMemo(tmp_path / FRONTIER_FILE_NAME)
    memo.put(KEY, (64, 256))
    saved = json.loads(memo.path.read_text())
    [name] = saved["entries"]
    saved["entries"][name]["train_max"] = damaged
    memo.path.write_text(json.dumps(saved))
    with pytest.raises(UserError, match=rf"^{re.escape(str(memo.path))}: damaged entry"):
        memo.get(KEY)


def test_frontier_memo_get_or_compute_computes_once(tmp_path: Path) -> None:
    memo = FrontierMemo(tmp_path / FRONTIER_FILE_NAME)
    calls: list[int] = []

    def compute() -> tuple[int, int]:
        calls.append(1)
        return 256, 1024

    assert memo.get_or_compute(KEY, compute) == Frontier(256, 1024)
    assert memo.get_or_compute(KEY, compute) == Frontier(256, 1024)
    assert len(calls) == 1


def test_frontier_memo_get_or_compute_stores_nothing_when_compute_fails(tmp_path: Path) -> None:
    memo = FrontierMemo(tmp_path / FRONTIER_FILE_NAME)

    def fail() -> Frontier:
        raise RuntimeError("CUDA out of memory.")

    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        memo.get_or_compute(KEY, fail)
    assert memo.get(KEY) is None
    assert memo.get_or_compute(KEY, lambda: Frontier(8, 32)) == Frontier(8, 32)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"architecture": ""}, "FrontierKey.architecture must not be empty"),
        ({"precision": ""}, "FrontierKey.precision must not be empty"),
        ({"budget_bytes": 0}, "FrontierKey.budget_bytes must be >= 1"),
    ],
)
def test_frontier_key_rejects_empty_fields(fields: dict[str, object], match: str) -> None:
    values: dict[str, object] = {
        "architecture": "gat",
        "dataset": "hcrl",
        "device_type": "cpu",
        "budget_bytes": 1,
        "precision": "32-true",
    }
    values.update(fields)
    with pytest.raises(ValueError, match=match):
        FrontierKey(**values)  # type: ignore[arg-type]


def test_config_fingerprint_ignores_key_order_and_tells_configs_apart() -> None:
    assert config_fingerprint({"a": 1, "b": [1, 2]}) == config_fingerprint({"b": [1, 2], "a": 1})
    assert config_fingerprint({"a": 1}) != config_fingerprint({"a": 2})
    assert len(config_fingerprint({})) == 16


def _compute_in_worker(memo_path: Path, key: FrontierKey, log: Path, start: Event) -> None:
    def tune() -> Frontier:
        began = time.monotonic()
        time.sleep(0.3)
        with log.open("a") as out:  # one short line per append: appends do not interleave
            out.write(f"{os.getpid()} {began} {time.monotonic()}\n")
        return Frontier(100 + len(key.precision), 400)

    start.wait()
    found = FrontierMemo(memo_path).get_or_compute(key, tune)
    with log.with_suffix(".results").open("a") as out:
        out.write(f"{found.train_max} {found.eval_max}\n")


def _run_workers(tmp_path: Path, keys: list[FrontierKey]) -> tuple[list[str], list[str]]:
    memo_path, log = tmp_path / FRONTIER_FILE_NAME, tmp_path / "computed.log"
    context = multiprocessing.get_context("fork")
    start = context.Event()
    workers = [
        context.Process(target=_compute_in_worker, args=(memo_path, key, log, start))
        for key in keys
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    return log.read_text().splitlines(), log.with_suffix(".results").read_text().splitlines()


def test_frontier_memo_get_or_compute_runs_once_for_concurrent_trials(tmp_path: Path) -> None:
    computed, results = _run_workers(tmp_path, [KEY, KEY, KEY])
    assert len(computed) == 1
    assert results == ["107 400"] * 3
    assert FrontierMemo(tmp_path / FRONTIER_FILE_NAME).get(KEY) == Frontier(107, 400)


def test_frontier_memo_get_or_compute_does_not_serialise_different_keys(tmp_path: Path) -> None:
    computed, results = _run_workers(tmp_path, [KEY, BF16_KEY])
    assert sorted(results) == ["107 400", "110 400"]
    (_, start_a, end_a), (_, start_b, end_b) = (line.split() for line in computed)
    assert float(start_a) < float(end_b) and float(start_b) < float(end_a)  # they overlapped


def test_frontier_docstring_examples_run() -> None:
    assert doctest.testmod(frontier).failed == 0


def test_frontier_memo_that_cannot_be_written_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PermissionError traceback from the lock folder, in the middle of a run. Root can write
    # any folder here: the refusal is what cannot exist, so it is the one thing patched.
    memo = FrontierMemo(tmp_path / "memo.json")
    real_mkdir = Path.mkdir

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        if self == memo.locks_dir:
            raise PermissionError(13, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", refuse)
    key = FrontierKey("gat", "hcrl", "cpu", 2**30, "32-true")
    with pytest.raises(UserError, match=r"memo.json: cannot write the frontier memo beside it"):
        memo.get_or_compute(key, lambda: pytest.fail("computed without a memo to keep it"))
