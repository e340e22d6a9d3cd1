"""Command-line data options shared by every entry point (`--data-dir`, `--window`, ...)."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainables.data.source import DEFAULT_SYNTHETIC_MESSAGES, GraphSource
from trainables.errors import UserError

__all__ = ["SOURCE_OPTIONS", "add_source_arguments", "check_source_arguments", "source_from_args"]

SOURCE_OPTIONS: dict[str, str] = {
    "--data-dir": "data_dir",
    "--dataset": "dataset",
    "--window": "window",
    "--stride": "stride",
    "--num-messages": "num_messages",
    "--data-seed": "seed",
    "--on-bad-rows": "on_bad_rows",
}
"""The option that sets a `GraphSource` field, as its checks name it -> the field (a saved
source's key, in a run's `config.json` and a study's `study.json`)."""

# The options that shape synthetic traffic: with --data-dir, real captures are read instead.
_SYNTHETIC_OPTIONS = (("--num-messages", "num_messages"), ("--data-seed", "data_seed"))


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
        default=None,  # None: not given (an error with --data-dir), DEFAULT_SYNTHETIC_MESSAGES
        help=f"synthetic traffic size ({DEFAULT_SYNTHETIC_MESSAGES}); not with --data-dir",
    )
    group.add_argument(
        "--data-seed",
        type=int,
        default=None,  # None: not given (an error with --data-dir), 0
        help="synthetic traffic seed (0); not with --data-dir",
    )
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


def check_source_arguments(args: argparse.Namespace) -> None:
    """Options that contradict each other are an error, not one of them silently dropped.

    Raises:
        UserError: `--no-cache` with `--cache-dir`, or a synthetic-traffic option
            (`--num-messages`, `--data-seed`) with `--data-dir`; the message names both.
    """
    if args.no_cache and args.cache_dir is not None:
        raise UserError(
            f"--no-cache and --cache-dir {args.cache_dir} contradict each other: --no-cache"
            " neither reads nor writes a graph cache; give one of them"
        )
    if args.data_dir is not None:
        for option, dest in _SYNTHETIC_OPTIONS:
            if getattr(args, dest) is not None:
                raise UserError(
                    f"{option} shapes synthetic traffic, but --data-dir {args.data_dir} reads"
                    f" real captures instead; leave out {option} (or --data-dir, for synthetic"
                    " traffic)"
                )


def source_from_args(args: argparse.Namespace) -> GraphSource:
    """The `GraphSource` of the data options (checked with `check_source_arguments`)."""
    check_source_arguments(args)
    return GraphSource(
        data_dir=args.data_dir,
        dataset=args.dataset,
        window=args.window,
        stride=args.stride,
        num_messages=DEFAULT_SYNTHETIC_MESSAGES
        if args.num_messages is None
        else args.num_messages,
        seed=0 if args.data_seed is None else args.data_seed,
        on_bad_rows=args.on_bad_rows,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
    )
