"""Curriculum's VGAE scoring of the training set at several batch sizes, each in a fresh process.

    python benchmarks/bench_scoring.py [--batch-sizes 64,8192] [--data-dir DIR --dataset NAME]

Scoring runs before a trial's memory budget starts, so its memory is bounded only by its batch
size. A student VGAE (random weights: time and memory do not depend on them) scores every
training graph; reported: seconds and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import fresh_process


def child(args: argparse.Namespace) -> dict[str, Any]:
    import resource
    import time

    from trainables.data import GraphSource
    from trainables.data.datamodule import CANGraphDataModule
    from trainables.models.vgae import VGAE, VGAEConfig
    from trainables.modes.curriculum import score_graphs

    dm = CANGraphDataModule(GraphSource(data_dir=args.data_dir, dataset=args.dataset))
    dm.setup()
    assert dm.train_set is not None and dm.vocab is not None
    vgae = VGAE(VGAEConfig.preset("student", vocab_size=len(dm.vocab)))
    start = time.perf_counter()
    score_graphs(vgae, dm.train_set, batch_size=args.batch_size)
    return {
        "batch_size": args.batch_size,
        "graphs": len(dm.train_set),
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-sizes", default="64,8192")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    data = ["--data-dir", str(args.data_dir), "--dataset", args.dataset] if args.data_dir else []
    print(f"{'batch size':>10} {'graphs':>7} {'seconds':>8} {'peak RSS MiB':>13}")
    for size in args.batch_sizes.split(","):
        r = fresh_process.run_child(__file__, data, batch_size=size)
        print(f"{r['batch_size']:>10} {r['graphs']:>7} {r['seconds']:>8} {r['peak_rss_mib']:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
