"""Where the tuner's time goes: every probed step of one `find_frontier` call, timed.

    python benchmarks/profile_tuner.py --budget 96MiB [--size student] [--epochs 5]
        [--data-dir DIR --dataset NAME] [--no-aim] [--json]

The call `run_training` makes for curriculum mode (VGAE difficulty scores are random here: only
batch memory matters), under a real CPU budget: the training probe is the heaviest windows of
the run's epoch orders, the eval probe the validation set largest first (a trial adds its test
sets). Prints each size a step ran (train, then eval), whether it fitted, its seconds and who
ran it (Lightning's search, or the tuner's own single steps: the whole-set first try, the aim's
small steps and the cap it checks), then the tuner's total. `--no-aim` runs Lightning's search
from its first size, unaimed, as a baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", default="96MiB")
    parser.add_argument("--size", default="student")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--no-aim", action="store_true", help="Lightning's search from 2, unaimed (a baseline)"
    )
    args = parser.parse_args()

    import logging

    import numpy as np
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.tuner import batch_size_scaling

    from trainables.batching import fix_malloc_thresholds, memory_budget, parse_size
    from trainables.batching.heaviest import HeaviestWindows, largest_first
    from trainables.batching.tuner import TunerSettings, find_frontier, search
    from trainables.data import GraphSource
    from trainables.models import GATClassifier, GATConfig
    from trainables.modes import ClassifierModule
    from trainables.modes.curriculum import CurriculumDataModule

    logging.disable(logging.WARNING)
    # As `run_training` does under a CPU budget: before the data work, so that what it frees
    # is not left in the heap, loosening the budget by what the step reuses of it.
    fix_malloc_thresholds()
    source = GraphSource(data_dir=args.data_dir, dataset=args.dataset)
    dm = CurriculumDataModule(source, num_epochs=args.epochs, batch_size=8)
    dm.setup()
    assert dm.train_set is not None and dm.val_set is not None and dm.vocab is not None
    dm.set_difficulty(np.random.default_rng(0).random(len(dm.train_set)))
    config = GATConfig.preset(args.size, vocab_size=len(dm.vocab))
    val = dm.val_set

    steps: list[dict[str, Any]] = []
    run_step, run_once = batch_size_scaling._try_loop_run, search.run_once

    @contextlib.contextmanager
    def timing(size: int, by: str) -> Iterator[None]:
        start, fitted = time.perf_counter(), False
        try:
            yield
            fitted = True
        finally:
            seconds = time.perf_counter() - start
            steps.append({"size": size, "fitted": fitted, "seconds": seconds, "by": by})

    def timed(trainer: pl.Trainer, params: dict[str, Any]) -> None:
        with timing(trainer.datamodule.batch_size, "lightning"):  # type: ignore[attr-defined]
            run_step(trainer, params)

    def timed_once(module: Any, dataset: Any, size: int, **kwargs: Any) -> None:
        with timing(size, "tuner"):
            run_once(module, dataset, size, **kwargs)

    batch_size_scaling._try_loop_run = timed  # the tuner's own hooks wrap this one
    search.run_once = timed_once
    pl.seed_everything(0, verbose=False)
    with memory_budget(parse_size(args.budget), device=torch.device("cpu")):
        start = time.perf_counter()
        frontier = find_frontier(
            lambda: ClassifierModule(GATClassifier(config)),
            HeaviestWindows(dm.train_set, dm.train_orders(args.epochs)),
            largest_first(val.graphs.select(val.indices())),
            settings=TunerSettings(aim=not args.no_aim),
        )
        total = time.perf_counter() - start
    result = {
        "budget": args.budget,
        "train_max": frontier.train_max,
        "eval_max": frontier.eval_max,
        "train_graphs": len(dm.train_set),
        "tuner_seconds": round(total, 2),
        "step_seconds": round(sum(s["seconds"] for s in steps), 2),
        "steps": [{**s, "seconds": round(s["seconds"], 3)} for s in steps],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for s in steps:
        outcome = "fitted" if s["fitted"] else "OOM"
        print(f"{s['size']:>7} {outcome:>6} {s['seconds']:>8.2f} s  ({s['by']})")
    print(
        f"max train {frontier.train_max}, max eval {frontier.eval_max} "
        f"({len(dm.train_set)} training graphs): tuner {total:.1f} s, "
        f"of which {result['step_seconds']} s in the steps above"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
