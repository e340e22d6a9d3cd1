"""Graph-building speed and memory, against the pure pyarrow read as the floor, in one run.

    python benchmarks/bench_graphs.py [--data-dir ../shared/data/can-train-and-test]
        [--dataset hcrl_sa] [--synthetic-messages 20000000] [--repeats 3] [--json]

Measures, for the real training captures: pyarrow's plain CSV read (the floor), read + graph
build with a cold cache, and a cache load; then, in a fresh subprocess so its peak RSS is its
own: generating and building a synthetic capture of `--synthetic-messages` messages.
Figures are medians over `--repeats` runs. Goals (issue 2): cold build <= 4x the pure read;
cache load <= 0.5 s; 20M synthetic messages built in <= 60 s with peak RSS <= 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from trainables.data import GraphSource, load_split, resolve_dataset

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "can-train-and-test"


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_real(data_dir: Path, dataset: str, repeats: int) -> dict[str, Any]:
    files = resolve_dataset(data_dir, dataset).files("train")

    def pure_read() -> None:
        for f in files:
            with pa.input_stream(str(f), compression="detect") as stream:
                pacsv.read_csv(stream)

    with tempfile.TemporaryDirectory() as cache_dir:
        cold = GraphSource(data_dir=data_dir, dataset=dataset, use_cache=False)
        cached = GraphSource(data_dir=data_dir, dataset=dataset, cache_dir=Path(cache_dir))
        num_graphs = load_split(cached, "train").graphs.num_graphs  # fills the cache
        read_s = median_seconds(pure_read, repeats)
        cold_s = median_seconds(lambda: load_split(cold, "train"), repeats)
        cache_s = median_seconds(lambda: load_split(cached, "train"), repeats)
    return {
        "dataset": dataset,
        "num_files": len(files),
        "num_graphs": num_graphs,
        "pure_read_s": round(read_s, 3),
        "cold_build_s": round(cold_s, 3),
        "cold_over_read": round(cold_s / read_s, 2),
        "cache_load_s": round(cache_s, 4),
    }


def bench_synthetic_child(num_messages: int) -> dict[str, Any]:
    """Runs in its own process: generation + graph building, with this process's peak RSS."""
    from trainables.data.graphs import build_graphs
    from trainables.data.synthetic import SyntheticConfig, generate_capture
    from trainables.data.vocab import Vocabulary

    start = time.perf_counter()
    capture = generate_capture(SyntheticConfig(num_messages=num_messages, seed=0))
    generate_s = time.perf_counter() - start
    start = time.perf_counter()
    graphs = build_graphs([capture], Vocabulary.from_captures([capture]))
    build_s = time.perf_counter() - start
    return {
        "num_messages": num_messages,
        "num_graphs": graphs.num_graphs,
        "generate_s": round(generate_s, 2),
        "build_s": round(build_s, 2),
        "total_s": round(generate_s + build_s, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dataset", default="hcrl_sa")
    parser.add_argument("--synthetic-messages", type=int, default=20_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(bench_synthetic_child(args.child)))
        return 0

    results: dict[str, Any] = {}
    if args.data_dir.is_dir():
        results["real"] = bench_real(args.data_dir, args.dataset, args.repeats)
    else:
        print(f"skipping real captures: {args.data_dir} not found", file=sys.stderr)
    child = subprocess.run(
        [sys.executable, __file__, "--child", str(args.synthetic_messages)],
        capture_output=True,
        text=True,
        check=True,
    )
    results["synthetic"] = json.loads(child.stdout)

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    if "real" in results:
        r = results["real"]
        print(
            f"{r['dataset']} training captures ({r['num_files']} files, {r['num_graphs']} graphs)"
        )
        print(f"  pure pyarrow read : {r['pure_read_s']:.3f} s")
        print(
            f"  read + build, cold: {r['cold_build_s']:.3f} s  ({r['cold_over_read']}x read;"
            f" goal <= 4x)"
        )
        print(f"  cache load        : {r['cache_load_s']:.4f} s  (goal <= 0.5 s)")
    s = results["synthetic"]
    print(f"synthetic {s['num_messages']:,} messages -> {s['num_graphs']:,} graphs")
    print(
        f"  generate {s['generate_s']} s + build {s['build_s']} s = {s['total_s']} s"
        f" (goal <= 60 s); peak RSS {s['peak_rss_gib']} GiB (goal <= 4 GiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
