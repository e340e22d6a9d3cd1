"""A study-wide memo of the tuner's largest batch sizes, so the tuner runs once per distinct key.

The largest batch size that fits depends on the model architecture, the dataset, the device type,
the memory budget and the precision, not on the batch-size hyperparameters a trial searches. Trials
that share those share the tuner's result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from trainables.batching.locked_json import LockedJsonFile, canonical_key, file_lock
from trainables.errors import UserError

__all__ = ["FRONTIER_FILE_NAME", "Frontier", "FrontierKey", "FrontierMemo", "config_fingerprint"]

FRONTIER_FILE_NAME = "batch_size_frontier.json"


class Frontier(NamedTuple):
    """The largest train and eval batch sizes that fitted.

    Example:
        >>> train_max, eval_max = Frontier(train_max=512, eval_max=2048)
        >>> train_max
        512
    """

    train_max: int
    eval_max: int


@dataclass(frozen=True)
class FrontierKey:
    """What the largest batch size depends on.

    Args:
        architecture: The model architecture and its size-affecting settings, as a stable string
            (e.g. `config_fingerprint` of the model config without batch-size fields).
        dataset: The dataset name (and anything of it that changes graph sizes, e.g. the window).
        device_type: `"cpu"` or `"cuda"` (or a GPU model name, to keep GPUs apart).
        budget_bytes: The memory budget in bytes.
        precision: Lightning's precision setting, e.g. `"32-true"` or `"bf16-mixed"`.

    Example:
        >>> FrontierKey("gat-3x64", "hcrl", "cpu", 2**30, "32-true").precision
        '32-true'
    """

    architecture: str
    dataset: str
    device_type: str
    budget_bytes: int
    precision: str

    def __post_init__(self) -> None:
        for name in ("architecture", "dataset", "device_type", "precision"):
            if not getattr(self, name):
                raise ValueError(f"FrontierKey.{name} must not be empty")
        if self.budget_bytes < 1:
            raise ValueError(f"FrontierKey.budget_bytes must be >= 1, got {self.budget_bytes}")


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-able config, for `FrontierKey.architecture`.

    Args:
        config: The settings (key order does not matter).

    Returns:
        16 hex digits of the SHA-256 of the config as sorted JSON.

    Example:
        >>> config_fingerprint({"hidden": 64, "layers": 3}) == config_fingerprint(
        ...     {"layers": 3, "hidden": 64})
        True
    """
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FrontierMemo:
    """The tuner's results per `FrontierKey`, in a JSON file shared by a study's trials.

    Safe under concurrent trials in different processes: writes are locked read-modify-writes, and
    `get_or_compute` holds a lock per key while it computes, so trials that need the same key at
    the same time run the tuner once; trials with different keys do not wait for each other.

    Args:
        path: The JSON file, e.g. `study_dir / FRONTIER_FILE_NAME`. Per-key lock files go in a
            folder beside it (`<path>.locks`).

    Example:
        >>> import tempfile
        >>> memo = FrontierMemo(Path(tempfile.mkdtemp()) / FRONTIER_FILE_NAME)
        >>> key = FrontierKey("gat-3x64", "hcrl", "cpu", 2**30, "32-true")
        >>> memo.get(key) is None
        True
        >>> memo.get_or_compute(key, lambda: Frontier(train_max=512, eval_max=2048))
        Frontier(train_max=512, eval_max=2048)
        >>> memo.get_or_compute(key, lambda: Frontier(1, 1))  # not computed again
        Frontier(train_max=512, eval_max=2048)
    """

    FORMAT_NAME = "batch-hpo batch-size frontier memo"

    def __init__(self, path: Path) -> None:
        self._file = LockedJsonFile(Path(path), format_name=self.FORMAT_NAME)
        self.locks_dir = self._file.path.with_name(self._file.path.name + ".locks")

    @property
    def path(self) -> Path:
        """The JSON file."""
        return self._file.path

    def get(self, key: FrontierKey) -> Frontier | None:
        """The stored frontier for `key`, or None."""
        entry = self._file.read().get(canonical_key(key))
        if entry is None:
            return None
        sizes = (entry.get("train_max"), entry.get("eval_max")) if isinstance(entry, dict) else ()
        if len(sizes) != 2 or not all(
            isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in sizes
        ):
            raise UserError(
                f"{self.path}: damaged entry for {canonical_key(key)} ({entry!r}: train_max and"
                " eval_max must be integers >= 1); move the file away to tune again"
            )
        return Frontier(int(entry["train_max"]), int(entry["eval_max"]))

    def put(self, key: FrontierKey, frontier: Frontier | tuple[int, int]) -> Frontier:
        """Store the frontier for `key`, replacing any stored before.

        Returns:
            The frontier stored.

        Raises:
            ValueError: A batch size < 1.
        """
        train_max, eval_max = frontier
        if train_max < 1 or eval_max < 1:
            raise ValueError(f"frontier batch sizes must be >= 1, got {train_max=}, {eval_max=}")
        stored = Frontier(int(train_max), int(eval_max))

        def store(entries: dict[str, Any]) -> None:
            entries[canonical_key(key)] = stored._asdict()

        self._file.update(store)
        return stored

    def get_or_compute(
        self, key: FrontierKey, compute: Callable[[], Frontier | tuple[int, int]]
    ) -> Frontier:
        """The stored frontier for `key`, or `compute()`'s, stored; one computation per key.

        While `compute` runs, other callers of `get_or_compute` with the same key wait and then
        read its result. If it raises, nothing is stored and the error propagates; the next caller
        computes.

        Args:
            key: What the frontier depends on.
            compute: Runs the tuner and returns `(train_max, eval_max)`.

        Returns:
            The frontier for `key`.
        """
        found = self.get(key)
        if found is not None:
            return found
        try:
            self.locks_dir.mkdir(parents=True, exist_ok=True)
            (self.locks_dir / f"{_key_digest(key)}.lock").touch()
        except OSError as err:  # a PermissionError traceback before
            raise UserError(
                f"{self.path}: cannot write the frontier memo beside it ({err.strerror}); give"
                " --frontier-memo a file in a folder you can write"
            ) from None
        with file_lock(self.locks_dir / f"{_key_digest(key)}.lock"):
            found = self.get(key)  # another trial may have computed it while this one waited
            if found is not None:
                return found
            return self.put(key, compute())


def _key_digest(key: FrontierKey) -> str:
    return hashlib.sha256(canonical_key(key).encode()).hexdigest()[:32]
