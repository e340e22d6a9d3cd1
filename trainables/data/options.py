"""Command-line data options shared by every entry point (`--data-dir`, `--window`, ...)."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainables.data.source import DEFAULT_SYNTHETIC_MESSAGES, GraphSource

__all__ = ["add_source_arguments", "source_from_args"]


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options every entry point shares (`--data-dir`, `--dataset`, `--window`, ...)."""
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="root of real captures (<root>/<dataset>/<split>/<file>.csv[.gz]); "
        "default: synthetic CAN traffic",
    )
    group.add_argument("--dataset", default=None, help="dataset folder under --data-dir")
    group.add_argument("--window", type=int, default=100, help="messages per graph (100)")
    group.add_argument(
        "--stride",
        type=int,
        default=None,
        help="messages between window starts (default: --window)",
    )
    group.add_argument(
        "--num-messages",
        type=int,
        default=DEFAULT_SYNTHETIC_MESSAGES,
        help=f"synthetic traffic size ({DEFAULT_SYNTHETIC_MESSAGES})",
    )
    group.add_argument("--data-seed", type=int, default=0, help="synthetic traffic seed (0)")
    group.add_argument(
        "--on-bad-rows",
        choices=("error", "skip"),
        default="error",
        help="stop at the first bad row (default) or drop bad rows and report",
    )
    group.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="graph cache folder (default $BATCH_HPO_CACHE or ~/.cache/batch-hpo)",
    )
    group.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")


def source_from_args(args: argparse.Namespace) -> GraphSource:
    return GraphSource(
        data_dir=args.data_dir,
        dataset=args.dataset,
        window=args.window,
        stride=args.stride,
        num_messages=args.num_messages,
        seed=args.data_seed,
        on_bad_rows=args.on_bad_rows,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
    )
