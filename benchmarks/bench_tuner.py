"""Batch-size methods side by side under a real memory budget (issue 4).

    python benchmarks/bench_tuner.py [--budgets 64MiB,128MiB] [--epochs 3] [--size student]
        [--data-dir DIR --dataset NAME] [--device auto|cpu|cuda] [--json]

The budget is the one trials run under: on CPU an `RLIMIT_DATA` limit, on CUDA
`torch.cuda.set_per_process_memory_fraction` (real CUDA out-of-memory errors). `--device auto`
(the default) takes CUDA where there is a GPU, as trials do.

For the curriculum mode (VGAE difficulty scores are random here: only batch memory matters),
at each budget, every measurement in a fresh process:

- true maximum: the largest batch size whose full training run (every batch of every epoch,
  validation included) ends without an out-of-memory error, found by bisection over full runs;
- `lightning-power`: Lightning's power-mode tuner alone, on the datamodule as training sees it
  (shuffled batches of the first epoch's sample), with its default margin;
- `power-x0.5`: the same, times the original code's fixed factor 0.5;
- `ours`: this project's tuner at safety factor 1.0, probing the heaviest batches of each size
  in the orders the run's epochs train in (`HeaviestWindows`, as `run_training` does);
- `ours-unaimed`: the same with `TunerSettings(aim=False)`: Lightning's binsearch bisecting
  blind after its doubling, instead of the steps aimed by their measured memory;

then a full training run at the applied size: did any epoch run out of memory, and the tuner's
seconds as a share of the whole run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import fresh_process

METHODS = ("lightning-power", "power-x0.5", "ours-unaimed", "ours")


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One fresh process: tune with `args.method` (or use `args.batch_size`), then train."""
    import logging
    import os

    if args.device == "cpu":
        # Every trainer here, the tuner's included, picks its accelerator as trials do ("auto").
        os.environ["CUDA_VISIBLE_DEVICES"] = ""

    import numpy as np
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    from trainables.batching import (
        fix_malloc_thresholds,
        is_out_of_memory,
        memory_budget,
        parse_size,
    )
    from trainables.batching.frontier import Frontier
    from trainables.batching.heaviest import HeaviestWindows, largest_first
    from trainables.batching.tuner import TunerSettings, find_frontier
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
    assert dm.train_set is not None and dm.vocab is not None
    dm.set_difficulty(np.random.default_rng(0).random(len(dm.train_set)))
    vocab_size = len(dm.vocab)

    def module() -> ClassifierModule:
        return ClassifierModule(GATClassifier(GATConfig.preset(args.size, vocab_size=vocab_size)))

    def trainer(**kwargs: Any) -> pl.Trainer:
        return pl.Trainer(
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            **kwargs,
        )

    device = _device(args.device)
    result: dict[str, Any] = {
        "method": args.method or "fixed",
        "device": device.type,
        "oom": False,
        "oom_stage": None,
    }
    with memory_budget(parse_size(args.budget), device=device) as budget:
        start = time.perf_counter()
        stage = "tuner"
        try:
            if args.method in ("lightning-power", "power-x0.5"):
                probe_dm = CurriculumDataModule(source, num_epochs=args.epochs, batch_size=2)
                probe_dm.setup()
                probe_dm.set_difficulty(np.random.default_rng(0).random(len(dm.train_set)))
                found = Tuner(
                    trainer(max_epochs=1, reload_dataloaders_every_n_epochs=1)
                ).scale_batch_size(module(), datamodule=probe_dm, mode="power")
                tuned = int(found or 1)
                applied = tuned if args.method == "lightning-power" else max(1, tuned // 2)
            elif args.method in ("ours", "ours-unaimed"):
                val = dm.val_set
                assert val is not None
                frontier: Frontier = find_frontier(
                    module,
                    HeaviestWindows(dm.train_set, dm.train_orders(args.epochs)),
                    largest_first(val.graphs.select(val.indices())),
                    settings=TunerSettings(aim=args.method == "ours"),
                )
                tuned = frontier.train_max
                applied = tuned
                budget.rebase()  # as `run_training` does after the tuner
            else:
                tuned = applied = args.batch_size
            result.update(tuned=tuned, applied=applied, tuner_seconds=time.perf_counter() - start)
            dm.batch_size = applied
            stage = "train"
            # Built inside the budget, after the tuner, as `run_training` builds the run's module.
            pl.seed_everything(0, verbose=False)
            model = module()
            train_start = time.perf_counter()
            trainer(max_epochs=args.epochs, reload_dataloaders_every_n_epochs=1).fit(
                model, datamodule=dm
            )
            result["train_seconds"] = time.perf_counter() - train_start
        except BaseException as err:
            if not is_out_of_memory(err):
                raise
            result.update(oom=True, oom_stage=stage)
    result["max_epoch_size"] = dm.max_epoch_size
    return result


def _device(name: str) -> Any:
    """The torch device `--device` names (`auto`: CUDA where there is a GPU)."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_tuner: --device cuda, but torch sees no GPU")
    return torch.device(name)


def run_child(base: list[str], **options: Any) -> dict[str, Any]:
    return fresh_process.run_child(__file__, base, **options)


def true_maximum(base: list[str], high: int) -> int:
    """Largest batch size in [1, high] whose full run ends without OOM (0 if none does)."""
    return fresh_process.largest_passing(
        lambda size: not run_child(base, batch_size=size)["oom"], high
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budgets", default="64MiB,128MiB")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", default="student")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--budget", help=argparse.SUPPRESS)
    parser.add_argument("--method", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0

    rows = []
    for budget in args.budgets.split(","):
        base = ["--budget", budget, "--epochs", str(args.epochs), "--size", args.size]
        base += ["--device", args.device]
        if args.data_dir:
            base += ["--data-dir", str(args.data_dir), "--dataset", args.dataset]
        methods = {m: run_child(base, method=m) for m in METHODS}
        ceiling = max(int(r.get("tuned") or 1) for r in methods.values()) * 2
        ceiling = min(ceiling, methods["ours"]["max_epoch_size"])
        best = true_maximum(base, ceiling)
        for name, r in methods.items():
            total = r.get("tuner_seconds", 0) + r.get("train_seconds", 0)
            rows.append(
                {
                    "budget": budget,
                    "device": r["device"],
                    "method": name,
                    "true_max": best,
                    "tuned": r.get("tuned"),
                    "applied": r.get("applied"),
                    "applied_over_true": round(r["applied"] / best, 3)
                    if r.get("applied") and best
                    else None,
                    "oom": r["oom"],
                    "oom_stage": r["oom_stage"],
                    "tuner_seconds": round(r.get("tuner_seconds", 0), 2),
                    "tuner_share": round(r.get("tuner_seconds", 0) / total, 3) if total else None,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"device: {rows[0]['device'] if rows else args.device}")
    print(
        f"{'budget':>8} {'method':>16} {'true max':>8} {'tuned':>6} {'applied':>7} "
        f"{'/true':>6} {'OOM':>10} {'tuner s':>8} {'share':>6}"
    )
    for r in rows:
        oom = r["oom_stage"] if r["oom"] else "no"
        print(
            f"{r['budget']:>8} {r['method']:>16} {r['true_max']:>8} {r['tuned']!s:>6} "
            f"{r['applied']!s:>7} {r['applied_over_true']!s:>6} {oom:>10} "
            f"{r['tuner_seconds']:>8} {r['tuner_share']!s:>6}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
