"""`GraphSource`: where graphs come from (real captures or synthetic traffic), how they are built.

`load_split` is the one way in: it resolves the split, builds the vocabulary from the training
split only, and builds graphs or loads them from the cache.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from trainables.data.cache import GraphCache, default_cache_dir, file_signature
from trainables.data.capture import Capture
from trainables.data.graphs import GraphArrays, build_graphs, validate_window
from trainables.data.layout import DatasetLayout, is_test_split, is_train_split, resolve_dataset
from trainables.data.reader import BadRowPolicy, read_capture
from trainables.data.vocab import Vocabulary
from trainables.errors import UserError, require_int

__all__ = [
    "DEFAULT_SYNTHETIC_MESSAGES",
    "GraphSource",
    "LoadedSplit",
    "load_split",
    "without_repeats",
]

logger = logging.getLogger(__name__)

DEFAULT_SYNTHETIC_MESSAGES = 200_000
SYNTHETIC_DATASET = "synthetic"


@dataclass(frozen=True)
class GraphSource:
    """Where graphs come from and how they are built.

    Args:
        data_dir: Root of real captures (`<root>/<dataset>/<split>/<file>`); None for the
            embedded synthetic traffic.
        dataset: Dataset folder under `data_dir`; may be omitted when there is only one.
        window: Messages per graph (default 100).
        stride: Messages between window starts (default: `window`).
        num_messages: Size of the synthetic traffic, all splits together (synthetic only).
        seed: Seed of the synthetic traffic (synthetic only).
        on_bad_rows: `"error"` stops at the first bad row; `"skip"` drops and reports them.
        cache_dir: Graph cache folder (default `default_cache_dir()`).
        use_cache: Whether to read and write the cache.

    Example:
        >>> GraphSource(window=50).dataset_name
        'synthetic'
    """

    data_dir: Path | None = None
    dataset: str | None = None
    window: int = 100
    stride: int | None = None
    num_messages: int = DEFAULT_SYNTHETIC_MESSAGES
    seed: int = 0
    on_bad_rows: BadRowPolicy = "error"
    cache_dir: Path | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        validate_window(self.window, self.stride)
        if self.data_dir is None and self.dataset not in (None, SYNTHETIC_DATASET):
            raise UserError(
                f"--dataset {self.dataset} needs --data-dir, the folder that holds it (without"
                " --data-dir, synthetic traffic is generated)"
            )
        if self.data_dir is None:
            self._check_synthetic()
        if self.on_bad_rows not in ("error", "skip"):
            raise UserError(f"--on-bad-rows must be 'error' or 'skip', got {self.on_bad_rows!r}")

    def _check_synthetic(self) -> None:
        # Checked here, by option: the generator's own checks name its arguments (`seed`).
        from trainables.data.synthetic import MAX_SYNTHETIC_MESSAGES, SYNTHETIC_BYTES_PER_MESSAGE

        require_int("--data-seed", self.seed, minimum=0)
        if self.num_messages < 10 * self.window:
            raise UserError(
                f"--num-messages must be >= 10 x --window ({10 * self.window}) for "
                f"synthetic traffic, got {self.num_messages}"
            )
        if self.num_messages > MAX_SYNTHETIC_MESSAGES:
            peak = MAX_SYNTHETIC_MESSAGES * SYNTHETIC_BYTES_PER_MESSAGE / 1e9
            raise UserError(
                f"--num-messages must be at most {MAX_SYNTHETIC_MESSAGES:_} for synthetic"
                f" traffic, got {self.num_messages:_}: the generator holds every message in"
                f" memory (about {SYNTHETIC_BYTES_PER_MESSAGE} bytes each, {peak:.0f} GB at the"
                " limit); for more, use real captures (--data-dir)"
            )

    @property
    def is_synthetic(self) -> bool:
        return self.data_dir is None

    def absolute(self) -> GraphSource:
        """This source with its folders made absolute, for a process in another working
        directory (a Ray worker runs in its own)."""
        return replace(
            self,
            data_dir=None if self.data_dir is None else Path(self.data_dir).resolve(),
            cache_dir=None if self.cache_dir is None else Path(self.cache_dir).resolve(),
        )

    @property
    def dataset_name(self) -> str:
        if self.is_synthetic:
            return SYNTHETIC_DATASET
        return self.layout().name

    def layout(self) -> DatasetLayout:
        if self.data_dir is None:
            raise UserError("synthetic traffic has no dataset folder")
        return resolve_dataset(self.data_dir, self.dataset)

    def split_names(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(train split names, test split names)."""
        if self.is_synthetic:
            from trainables.data.synthetic import SYNTHETIC_SPLITS

            return (
                tuple(s for s in SYNTHETIC_SPLITS if is_train_split(s)),
                tuple(s for s in SYNTHETIC_SPLITS if is_test_split(s)),
            )
        layout = self.layout()
        return layout.train_splits, layout.test_splits


@dataclass(frozen=True, eq=False)
class LoadedSplit:
    """Graphs of one split with how they were obtained.

    Args:
        name: The split asked for (`train`, `test` or a split folder).
        graphs: The graphs, collated.
        vocab: The training vocabulary the graphs were built with.
        cache_hit: Whether the graphs came from the cache.
        seconds: Wall time to obtain them.
        dropped_rows: File -> bad rows dropped (only with `on_bad_rows="skip"`).
    """

    name: str
    graphs: GraphArrays
    vocab: Vocabulary
    cache_hit: bool
    seconds: float
    dropped_rows: dict[str, int] = field(default_factory=dict)


def load_split(source: GraphSource, split: str = "train") -> LoadedSplit:
    """Graphs of `split` (`train`, `test` or a split folder name), from the cache when valid."""
    start = time.perf_counter()
    cache = GraphCache(source.cache_dir or default_cache_dir()) if source.use_cache else None
    if source.is_synthetic:
        return _load_synthetic(source, split, cache, start)

    layout = source.layout()
    train_files = layout.files("train")
    files = layout.files(split)
    captures: dict[Path, Capture] = {}

    def read(paths: tuple[Path, ...]) -> list[Capture]:
        missing = [p for p in dict.fromkeys(paths) if p not in captures]
        # Files are read side by side: decompression and parsing release the GIL. The first
        # bad file (in order) raises, as a sequential read would.
        with ThreadPoolExecutor(max_workers=min(len(missing), os.cpu_count() or 1) or 1) as pool:
            for path, capture in zip(
                missing,
                pool.map(lambda p: read_capture(p, on_bad_rows=source.on_bad_rows), missing),
                strict=True,
            ):
                captures[path] = capture
        return [captures[p] for p in paths]

    vocab_key = GraphCache.key(
        kind="vocab", files=file_signature(train_files), on_bad_rows=source.on_bad_rows
    )
    ids = cache.load_array(vocab_key) if cache else None
    if ids is None:
        vocab = Vocabulary.from_captures(read(train_files))
        if cache:
            cache.save_array(vocab_key, vocab.ids)
    else:
        vocab = Vocabulary(ids)

    key = GraphCache.key(
        kind="graphs",
        files=file_signature(files),
        window=source.window,
        stride=source.stride,
        vocab=vocab.fingerprint(),
        on_bad_rows=source.on_bad_rows,
        repeats="dropped",  # graphs cached before repeated captures were read once are stale
    )
    hit = cache.load_graphs(key) if cache else None
    if hit is not None:
        graphs, meta = hit
        return _loaded(split, graphs, vocab, True, start, meta["dropped_rows"])
    split_captures = without_repeats(split, read(files))
    graphs = build_graphs(split_captures, vocab, window=source.window, stride=source.stride)
    dropped = {c.name: c.num_dropped_rows for c in split_captures if c.num_dropped_rows}
    if cache:
        cache.save_graphs(key, graphs, {"dropped_rows": dropped, "split": split})
    return _loaded(split, graphs, vocab, False, start, dropped)


def _load_synthetic(
    source: GraphSource, split: str, cache: GraphCache | None, start: float
) -> LoadedSplit:
    from trainables.data import synthetic

    train_names, test_names = source.split_names()
    names = {"train": train_names, "test": test_names}.get(split, (split,))
    if not set(names) <= set(synthetic.SYNTHETIC_SPLITS):
        raise UserError(
            f"--split {split}: the synthetic dataset has splits "
            f"train, test, {', '.join(synthetic.SYNTHETIC_SPLITS)}"
        )
    parts: dict[str, Any] = dict(
        kind="synthetic",
        version=synthetic.GENERATOR_VERSION,
        num_messages=source.num_messages,
        seed=source.seed,
        window=source.window,
        stride=source.stride,
    )
    keys = {name: GraphCache.key(split=name, **parts) for name in synthetic.SYNTHETIC_SPLITS}
    vocab_key = GraphCache.key(split="vocab", **parts)
    if cache:
        ids = cache.load_array(vocab_key)
        hits = [cache.load_graphs(keys[name]) for name in names]
        if ids is not None and all(h is not None for h in hits):
            graphs = GraphArrays.concat([h[0] for h in hits if h is not None])
            return _loaded(split, graphs, Vocabulary(ids), True, start, {})
    # Generate every split at once: the test traffic shares the training vehicle's ECUs.
    splits = synthetic.synthetic_splits(source.num_messages, seed=source.seed)
    vocab = Vocabulary.from_captures(c for name in train_names for c in splits[name])
    built = {
        name: build_graphs(caps, vocab, window=source.window, stride=source.stride)
        for name, caps in splits.items()
    }
    if cache:
        cache.save_array(vocab_key, vocab.ids)
        for name, graphs in built.items():
            cache.save_graphs(keys[name], graphs, {"dropped_rows": {}, "split": name})
    graphs = GraphArrays.concat([built[name] for name in names])
    return _loaded(split, graphs, vocab, False, start, {})


def without_repeats(split: str, captures: list[Capture]) -> list[Capture]:
    """`captures` less any that holds exactly the messages of an earlier one, with a warning.

    A dataset can list one capture in two split folders (hcrl_sa has its two attack-free
    captures in both `train_01_attack_free` and `train_02_with_attacks`); read twice, a third
    of its training graphs were copies, and a random validation split scored half its graphs
    on copies of training graphs. Only captures of equal length are compared.
    """
    kept: list[Capture] = []
    for capture in captures:
        same = next((k for k in kept if _same_messages(k, capture)), None)
        if same is None:
            kept.append(capture)
        else:
            logger.warning(
                "split %s: %s holds the same %d messages as %s: read once",
                split,
                capture.name,
                len(capture),
                same.name,
            )
    return kept


def _same_messages(a: Capture, b: Capture) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(getattr(a, field), getattr(b, field))
        for field in ("timestamp", "can_id", "dlc", "payload", "attack")
    )


def _loaded(
    split: str,
    graphs: GraphArrays,
    vocab: Vocabulary,
    cache_hit: bool,
    start: float,
    dropped: dict[str, int],
) -> LoadedSplit:
    seconds = time.perf_counter() - start
    logger.info(
        "split %s: %d graphs (%d attack), %s in %.2f s",
        split,
        graphs.num_graphs,
        int(graphs.y.sum()),
        "cache hit" if cache_hit else "built",
        seconds,
    )
    return LoadedSplit(split, graphs, vocab, cache_hit, seconds, dropped)
