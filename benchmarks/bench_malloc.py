"""What the CPU budget's fixed malloc threshold costs in speed, and what it buys in capacity.

    python benchmarks/bench_malloc.py [--thresholds 128KiB,32MiB,dynamic] [--budget 64MiB]
        [--batch-size 256] [--size student] [--data-dir DIR --dataset NAME] [--json]

A CPU trial's budget fixes glibc's mmap threshold (`memory_budget(mmap_threshold_bytes=...)`,
128 KiB by default) so that freed blocks leave the data segment and `RLIMIT_DATA` measures live
memory. Every block of at least the threshold is then a fresh mapping, paid for in page faults.
For each threshold (`dynamic`: glibc's own, left alone), every measurement in a fresh process:

- seconds per training step (forward, backward, Adam) at `--batch-size`, under a budget large
  enough never to trip (speed only);
- the largest batch size whose two shuffled epochs of training steps run under `--budget`
  (capacity), found by bisection.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import fresh_process

EPOCHS = 2


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One fresh process: time steps (`--steps`) or train under `--budget` (`--fits`)."""
    import logging
    import time

    import torch

    from trainables.batching import is_out_of_memory, memory_budget, parse_size
    from trainables.data import GraphSource
    from trainables.data.datamodule import CANGraphDataModule
    from trainables.data.dataset import GraphLoader
    from trainables.models import GATClassifier, GATConfig
    from trainables.modes import ClassifierModule

    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    dm = CANGraphDataModule(GraphSource(data_dir=args.data_dir, dataset=args.dataset))
    dm.setup()
    assert dm.train_set is not None and dm.vocab is not None
    module = ClassifierModule(GATClassifier(GATConfig.preset(args.size, vocab_size=len(dm.vocab))))
    optimizer = torch.optim.Adam(module.parameters())

    def step(batch: Any) -> None:
        optimizer.zero_grad()
        module.training_loss(batch).backward()
        optimizer.step()

    threshold = None if args.threshold == "dynamic" else parse_size(args.threshold)
    budget = parse_size(args.budget) if args.fits else 16 << 30
    loader = GraphLoader(dm.train_set, batch_size=args.batch_size, shuffle=bool(args.fits))
    with memory_budget(budget, device=torch.device("cpu"), mmap_threshold_bytes=threshold):
        if not args.fits:
            batches = [batch for batch, _ in zip(loader, range(args.steps + 1), strict=False)]
            step(batches[0])  # Adam's state is allocated on the first step
            start = time.perf_counter()
            for batch in batches[1:]:
                step(batch)
            seconds = (time.perf_counter() - start) / (len(batches) - 1)
            return {"seconds_per_step": seconds, "graphs": len(dm.train_set)}
        try:
            for _ in range(EPOCHS):
                for batch in loader:
                    step(batch)
        except BaseException as error:
            if not is_out_of_memory(error):
                raise
            return {"fits": False}
    return {"fits": True}


def run_child(base: list[str], **options: Any) -> dict[str, Any]:
    return fresh_process.run_child(__file__, base, **options)


def capacity(base: list[str], num_graphs: int) -> int:
    """Largest batch size whose epochs run under the budget (0 if none does)."""
    return fresh_process.largest_passing(
        lambda size: run_child(base, fits=True, batch_size=size)["fits"], num_graphs
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--thresholds", default="128KiB,32MiB,dynamic")
    parser.add_argument("--budget", default="64MiB")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", default="student")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threshold", help=argparse.SUPPRESS)
    parser.add_argument("--fits", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0

    rows = []
    for threshold in args.thresholds.split(","):
        base = ["--threshold", threshold, "--size", args.size, "--budget", args.budget]
        if args.data_dir:
            base += ["--data-dir", str(args.data_dir), "--dataset", args.dataset]
        speed = run_child(base, batch_size=args.batch_size, steps=args.steps)
        rows.append(
            {
                "threshold": threshold,
                "ms_per_step": round(1000 * speed["seconds_per_step"], 1),
                "batch_size": args.batch_size,
                "budget": args.budget,
                "max_batch_size": capacity(base, speed["graphs"]),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'threshold':>10} {'ms/step':>8} {'at batch':>8} {'budget':>8} {'max batch':>9}")
    for r in rows:
        print(
            f"{r['threshold']:>10} {r['ms_per_step']:>8} {r['batch_size']:>8} "
            f"{r['budget']:>8} {r['max_batch_size']:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
