"""A run's tuned frontier: the tuner's probe sets, and the memo key that lets a study tune once
per architecture, data, device and budget."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from trainables.batching.budget import MemoryBudget
from trainables.batching.frontier import (
    FRONTIER_FILE_NAME,
    Frontier,
    FrontierKey,
    FrontierMemo,
    config_fingerprint,
)
from trainables.batching.heaviest import HeaviestWindows, largest_first
from trainables.batching.sizes import format_size
from trainables.batching.tuner import PROBE_VERSION, find_frontier, warm_up
from trainables.data.datamodule import CANGraphDataModule
from trainables.data.graphs import GraphArrays
from trainables.training.config import TrainConfig
from trainables.training.files import plain

__all__ = ["eval_probe_set", "train_probe_set", "tuned_frontier"]

logger = logging.getLogger("trainables.train")


def tuned_frontier(
    config: TrainConfig,
    datamodule: CANGraphDataModule,
    make_module: Any,
    budget: MemoryBudget | None,
    device: torch.device,
    model_config: Any,
) -> tuple[Frontier, bool]:
    """The tuned maxima, from the memo when this (architecture, data, device, budget) is known."""
    assert budget is not None and datamodule.train_set is not None
    memo = FrontierMemo(config.batching.memo_path or Path(config.out_dir) / FRONTIER_FILE_NAME)
    train_probe = train_probe_set(config, datamodule)
    key = FrontierKey(
        architecture=config_fingerprint(
            {
                "mode": config.mode,
                "size": config.resolved_size,
                "model": plain(dataclasses.asdict(model_config)),
                "tuner": plain(dataclasses.asdict(config.batching.tuner)),
                "probe": PROBE_VERSION,
            }
        ),
        # The epochs' training orders decide the heaviest batches the tuner probes.
        dataset=f"{_dataset_fingerprint(config)}:{train_probe.fingerprint()}",
        device_type=device.type,
        budget_bytes=budget.budget_bytes,
        precision="32-true",
    )
    computed = False

    def compute() -> Frontier:
        nonlocal computed
        computed = True
        logger.info(
            "tuner: searching the largest train and eval batches under %s (no memo entry in %s)",
            format_size(budget.budget_bytes),
            memo.path,
        )
        return find_frontier(
            make_module,
            train_probe,
            eval_probe_set(datamodule),
            settings=config.batching.tuner,
        )

    start = time.perf_counter()
    frontier = memo.get_or_compute(key, compute)
    if not computed:
        # Milliseconds, or the wait for another run that was computing the same key.
        waited = time.perf_counter() - start
        warm = ""
        if device.type == "cpu":
            # The tuner's process trains after its steps; this one trains as it would (see
            # `warm_up`), so the maximum holds here as it held there.
            seconds = warm_up(
                make_module,
                train_probe,
                eval_probe_set(datamodule),
                settings=config.batching.tuner,
            )
            warm = f", warmed up in {seconds:.2f} s"
        logger.info(
            "tuner: frontier memo hit (%s) in %.2f s: max train batch %d, max eval batch %d%s",
            memo.path,
            waited,
            frontier.train_max,
            frontier.eval_max,
            warm,
        )
    return frontier, not computed


def train_probe_set(config: TrainConfig, datamodule: CANGraphDataModule) -> HeaviestWindows:
    """The tuner's training probe: the heaviest batches of each size in the orders the run's
    epochs will train in."""
    train = datamodule.train_set
    assert train is not None
    return HeaviestWindows(train, datamodule.train_orders(config.epochs))


def eval_probe_set(datamodule: CANGraphDataModule) -> Any:
    """The tuner's evaluation probe: the graphs validation or testing will see, largest first,
    as many as the largest of those sets holds.

    No evaluation batch holds more graphs than its set, so a larger eval maximum would change
    nothing; the probe's whole-set step is at that size, not at all the sets' graphs together.
    """
    parts = [
        d.graphs.select(d.indices())
        for d in (datamodule.val_set, *datamodule.test_sets.values())
        if d is not None
    ]
    largest_set = max((p.num_graphs for p in parts), default=0)
    return largest_first(GraphArrays.concat(parts), limit=largest_set)


def _dataset_fingerprint(config: TrainConfig) -> str:
    source = dataclasses.asdict(config.source)
    for cache_only in ("cache_dir", "use_cache"):
        source.pop(cache_only)
    digest = hashlib.sha256(json.dumps(plain(source), sort_keys=True).encode()).hexdigest()
    return f"{config.source.dataset_name}:{digest[:16]}"
