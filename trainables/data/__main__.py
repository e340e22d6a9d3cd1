"""`python -m trainables.data build`: build (or load from the cache) graphs and summarise them."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from trainables.cli import configure_logging, run_cli
from trainables.data.graphs import NUM_NODE_FEATURES
from trainables.data.options import add_source_arguments, source_from_args
from trainables.data.source import load_split

logger = logging.getLogger("trainables.data")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainables.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build graphs and print a summary")
    add_source_arguments(build)
    build.add_argument(
        "--split",
        default="train",
        help="train (all train_* folders), test, or a split folder name",
    )
    build.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    configure_logging()

    source = source_from_args(args)
    loaded = load_split(source, args.split)
    graphs = loaded.graphs
    if graphs.num_graphs == 0:
        logger.warning(
            "%s / %s: no graphs: no capture holds --window %d messages; lower --window",
            source.dataset_name,
            args.split,
            source.window,
        )
    nodes, edges = graphs.num_nodes_per_graph, graphs.num_edges_per_graph
    summary: dict[str, Any] = {
        "dataset": source.dataset_name,
        "split": args.split,
        "num_graphs": graphs.num_graphs,
        "num_attack_graphs": int(graphs.y.sum()),
        "mean_nodes": round(float(nodes.mean()), 3) if len(nodes) else 0.0,
        "max_nodes": int(nodes.max()) if len(nodes) else 0,
        "mean_edges": round(float(edges.mean()), 3) if len(edges) else 0.0,
        "max_edges": int(edges.max()) if len(edges) else 0,
        "vocab_size": len(loaded.vocab),
        "num_node_features": NUM_NODE_FEATURES,
        "seconds": round(loaded.seconds, 4),
        "cache_hit": loaded.cache_hit,
        "dropped_rows": loaded.dropped_rows,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"{summary['dataset']} / {args.split}: {summary['num_graphs']} graphs "
        f"({summary['num_attack_graphs']} attack), window {source.window}, "
        f"stride {source.stride or source.window}"
    )
    print(
        f"  nodes per graph: mean {summary['mean_nodes']}, max {summary['max_nodes']}; "
        f"edges per graph: mean {summary['mean_edges']}, max {summary['max_edges']}"
    )
    print(
        f"  vocabulary: {summary['vocab_size']} CAN IDs (+1 out-of-vocabulary); "
        f"{NUM_NODE_FEATURES} node features"
    )
    print(f"  {'cache hit' if loaded.cache_hit else 'built'} in {summary['seconds']:.2f} s")
    for name, count in loaded.dropped_rows.items():
        print(f"  dropped {count} bad rows from {name}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
