"""Batching an epoch: `GraphLoader` (one vectorised gather per batch) against PyG's `DataLoader`
path (a `Data` per graph, then `Collater`), on the same graphs in the same order.

    python benchmarks/bench_loader.py [--batch-sizes 64,1024] [--data-dir DIR --dataset NAME]

For each batch size: seconds to batch one epoch of the training split (median of `--repeats`)
and how much the process's data segment (`VmData`, what a CPU `RLIMIT_DATA` budget counts) has
grown after one batch of the whole split, each path in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PATHS = ("pyg", "graph-loader")


def child(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from torch_geometric.data import Batch

    from trainables.batching.system_memory import process_memory_bytes, trim_malloc
    from trainables.data import GraphLoader, GraphSource, load_split
    from trainables.data.dataset import CANGraphDataset

    source = GraphSource(data_dir=args.data_dir, dataset=args.dataset)
    dataset = CANGraphDataset(load_split(source, "train").graphs)
    order = np.random.default_rng(0).permutation(len(dataset))

    def batches(batch_size: int) -> Any:
        if args.path == "graph-loader":
            return GraphLoader(dataset, batch_size=batch_size, sampler=order.tolist())
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        return (Batch.from_data_list([dataset.get(int(i)) for i in c]) for c in chunks)

    trim_malloc()
    before = process_memory_bytes("VmData")
    whole = next(iter(batches(len(dataset))))
    del whole
    trim_malloc()
    grown = process_memory_bytes("VmData") - before
    seconds = {}
    for batch_size in args.batch_sizes:
        times = []
        for _ in range(args.repeats):
            tick = time.perf_counter()
            for _batch in batches(batch_size):
                pass
            times.append(time.perf_counter() - tick)
        seconds[batch_size] = statistics.median(times)
    return {"graphs": len(dataset), "seconds": seconds, "vmdata_grown_bytes": grown}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-sizes", default="64,1024")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batch_sizes = [int(s) for s in str(args.batch_sizes).split(",")]
    if args.child:
        print(json.dumps(child(args)))
        return 0
    base = [sys.executable, __file__, "--child", "--repeats", str(args.repeats)]
    base += ["--batch-sizes", ",".join(map(str, args.batch_sizes))]
    if args.data_dir:
        base += ["--data-dir", str(args.data_dir), "--dataset", args.dataset]
    results = {}
    for path in PATHS:
        out = subprocess.run([*base, "--path", path], capture_output=True, text=True, check=True)
        results[path] = json.loads(out.stdout.strip().splitlines()[-1])
    pyg, ours = results["pyg"], results["graph-loader"]
    print(f"{pyg['graphs']} training graphs")
    for size in args.batch_sizes:
        a, b = pyg["seconds"][str(size)], ours["seconds"][str(size)]
        print(f"batch {size:>5}: PyG path {a:.3f} s, GraphLoader {b:.3f} s ({a / b:.1f}x)")
    print(
        f"VmData grown after one batch of every graph: PyG path"
        f" {pyg['vmdata_grown_bytes'] / 2**20:.1f} MiB, GraphLoader"
        f" {ours['vmdata_grown_bytes'] / 2**20:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
