"""`python -m hpo.estimate --space NAME`: a study's batch-size limits, wall time and SLURM request.

Measured on this machine, from no table of datasets or models: a probe of the space's model on
each dataset (memory and seconds per graph, the tuner replayed at a trial's budget) and one dry
study (Ray, MLflow, worker start-up, a trial's speed beside the others), combined for the trials
the study's sampler will draw. `study_seconds` is `run_study`'s wall time; the SLURM `--time`
adds a fresh driver's start-up (and with `--cluster`, Ray's) and `--margin`.

Example:
    python -m hpo.estimate --space normal --smoke-test
    python -m hpo.estimate --space kd --data-dir ../shared/data/can-train-and-test \
        --compare hcrl_sa set_04 --num-samples 40 --gpus-per-trial 0.5 --gpus 4 --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.estimate.arithmetic import DEFAULT_MARGIN
from trainables.cli import configure_logging
from trainables.errors import UserError, require_int

if TYPE_CHECKING:
    from hpo.estimate.combine import StudyEstimate
    from hpo.study import StudyConfig
    from trainables.data.source import GraphSource

__all__ = ["build_parser", "format_table", "main"]


def build_parser() -> argparse.ArgumentParser:
    from hpo.run import DEFAULT_NUM_SAMPLES, SMOKE_NUM_SAMPLES, add_set_argument
    from trainables.data.options import add_source_arguments

    parser = argparse.ArgumentParser(
        prog="python -m hpo.estimate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--space", required=True, help="the search space (as hpo.run)")
    study = parser.add_argument_group("the study (as hpo.run takes them)")
    study.add_argument(
        "--num-samples",
        type=int,
        default=None,
        help=f"trials ({DEFAULT_NUM_SAMPLES}; {SMOKE_NUM_SAMPLES} with --smoke-test)",
    )
    study.add_argument("--max-concurrent", type=int, default=2, help="trials at once (2)")
    study.add_argument("--epochs", type=int, default=None, help="epochs per trial (the space's)")
    add_set_argument(study)
    study.add_argument("--memory-budget", default=None, help="memory per trial, e.g. 4GiB")
    study.add_argument("--cpus-per-trial", type=float, default=1.0, help="(1)")
    study.add_argument("--gpus-per-trial", type=float, default=0.0, help="(0: CPU trials)")
    study.add_argument("--seed", type=int, default=0, help="(0)")
    study.add_argument("--smoke-test", action="store_true", help="hpo.run's smoke study")
    study.add_argument(
        "--cluster",
        action="store_true",
        help="the study joins a Ray cluster (hpo.run --address, the SLURM job): a fresh worker"
        " per trial, Ray's start-up in the SLURM time",
    )
    job = parser.add_argument_group("the job")
    job.add_argument("--gpus", type=int, default=None, help="GPUs of the job (this machine's, 1+)")
    job.add_argument("--gpus-per-node", type=int, default=None, help="(default: --gpus)")
    job.add_argument("--gpu-memory", default=None, help="memory of one GPU, e.g. 80GiB")
    job.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"SLURM --time over the estimate ({DEFAULT_MARGIN})",
    )
    job.add_argument(
        "--compare",
        nargs="+",
        default=None,
        metavar="DATASET",
        help="more datasets under --data-dir, side by side with --dataset's",
    )
    job.add_argument("--json", action="store_true", help="one JSON object per dataset per line")
    add_source_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    config, sources, sizes = _resolve(args)
    # What hpo.run refuses before its study is refused here too: no estimate of a study that
    # cannot run (a budget past this machine's memory, data no trial can train on).
    config.check_local_budget()
    from hpo.prepare import prepare_data

    for source in sources:
        prepare_data(source, seed=config.seed, mode=config.space.mode)
    from hpo.estimate.study import estimate_study, warm_up_driver

    warm_up_driver(config.space)
    import psutil

    # What a fresh `python -m hpo.run` spends before its study: interpreter, imports, warm-up.
    startup_seconds = time.time() - psutil.Process().create_time()
    estimates = estimate_study(
        config,
        sources=sources,
        gpus=args.gpus,
        gpus_per_node=args.gpus_per_node,
        gpu_memory_bytes=sizes["--gpu-memory"],
        margin=args.margin,
        startup_seconds=startup_seconds,
    )
    for estimate in estimates if args.json else []:
        print(json.dumps(estimate.to_json(), sort_keys=True))
    if not args.json:
        print(format_table(estimates))
    return 0


def _resolve(
    args: argparse.Namespace,
) -> tuple[StudyConfig, list[GraphSource], dict[str, int | None]]:
    """The study, its datasets and the sizes of the command line, checked before anything runs;
    the checks that import nothing heavy first, so that a bad number fails in a blink."""
    for option, value in (
        ("--gpus", args.gpus),
        ("--gpus-per-node", args.gpus_per_node),
        ("--num-samples", args.num_samples),
        ("--max-concurrent", args.max_concurrent),
        ("--epochs", args.epochs),
    ):
        if value is not None:
            require_int(option, value, minimum=1)
    if not args.cpus_per_trial > 0:
        raise UserError(f"--cpus-per-trial must be > 0, got {args.cpus_per_trial}")
    from hpo.study.config import check_gpus_per_trial

    check_gpus_per_trial(args.gpus_per_trial)
    if not (args.margin >= 1 and math.isfinite(args.margin)):
        raise UserError(
            f"--margin must be >= 1 (a SLURM time below the estimate), got {args.margin}"
        )
    _check_gpu_counts(args)
    if args.compare is not None and args.data_dir is None:
        raise UserError("--compare names datasets under --data-dir; give --data-dir too")
    from hpo.run import DEFAULT_NUM_SAMPLES, SMOKE_NUM_MESSAGES, SMOKE_NUM_SAMPLES
    from hpo.study import StudyConfig
    from search_spaces.overrides import apply_overrides
    from search_spaces.registry import get_space
    from trainables.batching.sizes import parse_memory_size
    from trainables.data.cache import default_cache_dir
    from trainables.data.layout import resolve_dataset
    from trainables.data.options import source_from_args

    sizes: dict[str, int | None] = {}
    for option, text in (
        ("--gpu-memory", args.gpu_memory),
        ("--memory-budget", args.memory_budget),
    ):
        sizes[option] = None if text is None else parse_memory_size(text, option=option)
        if sizes[option] is not None and sizes[option] <= 0:  # type: ignore[operator]
            raise UserError(f"{option} must be > 0, got {text!r}; e.g. 80GiB")
    space = get_space(args.space)
    if args.smoke_test:
        space = space.smoke()
        if args.data_dir is None and args.num_messages is None:
            args.num_messages = SMOKE_NUM_MESSAGES
    if args.epochs is not None:
        space = space.with_overrides(epochs=args.epochs)
    space = apply_overrides(space, args.set)
    source = source_from_args(args)
    if source.cache_dir is None and source.use_cache:
        source = dataclasses.replace(source, cache_dir=default_cache_dir().resolve())
    # --dataset first (when given), then the compared ones, each once.
    named = [name for name in [source.dataset, *(args.compare or [])] if name is not None]
    sources = [dataclasses.replace(source, dataset=name) for name in dict.fromkeys(named)] or [
        source
    ]
    for each in sources:
        if each.dataset != args.dataset:  # a name from --compare: its errors name that option
            resolve_dataset(args.data_dir, each.dataset, option="--compare")
        each.dataset_name  # noqa: B018 - resolves the dataset folder: a bad one fails here
    config = StudyConfig(
        space=space,
        study_dir=Path("studies") / "estimate",  # never written: the estimate runs no study
        source=sources[0],
        num_samples=args.num_samples
        or (SMOKE_NUM_SAMPLES if args.smoke_test else DEFAULT_NUM_SAMPLES),
        max_concurrent=args.max_concurrent,
        memory_budget=sizes["--memory-budget"],
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        seed=args.seed,
        address="auto" if args.cluster else None,
    )
    return config, sources, sizes


def _check_gpu_counts(args: argparse.Namespace) -> None:
    """The job's GPUs, a node's and a trial's fit inside each other (a trial runs on one node):
    counts that do not were estimated as a study whose trials never start."""
    gpus, job = args.gpus, f"--gpus {args.gpus} (the job's GPUs, all nodes together)"
    if gpus is None and (args.gpus_per_node is not None or args.gpus_per_trial > 1):
        import torch

        gpus = max(1, torch.cuda.device_count())  # the default, as `estimate_study` takes it
        job = f"the job's {gpus} GPU(s) (--gpus, by default this machine's)"
    if args.gpus_per_node is not None and args.gpus_per_node > gpus:
        raise UserError(
            f"--gpus-per-node {args.gpus_per_node} is more than {job}; lower --gpus-per-node"
            " or raise --gpus"
        )
    if args.gpus_per_node is not None and args.gpus_per_trial > args.gpus_per_node:
        raise UserError(
            f"--gpus-per-trial {args.gpus_per_trial:g} is more than --gpus-per-node"
            f" {args.gpus_per_node}: a trial's GPUs are on one node, so no trial could start;"
            " lower --gpus-per-trial or raise --gpus-per-node"
        )
    if gpus is not None and args.gpus_per_trial > gpus:
        raise UserError(
            f"--gpus-per-trial {args.gpus_per_trial:g} is more than {job}, so no trial could"
            " start; lower --gpus-per-trial or raise --gpus"
        )


def format_table(estimates: Sequence[StudyEstimate]) -> str:
    """The estimates side by side, one column per dataset."""
    from trainables.batching.sizes import format_size

    def size(num_bytes: float) -> str:
        return format_size(max(0, int(num_bytes)))

    def before_trials(e: StudyEstimate) -> float:
        return sum(e.parts[k] for k in ("ray_start", "tracking", "data", "prerequisites", "setup"))

    rows: list[tuple[str, Callable[[StudyEstimate], str]]] = [
        ("graphs train/val", lambda e: f"{e.num_train_graphs}/{e.num_eval_graphs}"),
        ("budget per trial", lambda e: size(e.memory_budget_bytes)),
        ("memory fixed + per graph",
         lambda e: f"{size(e.fixed_memory_bytes)} + {size(e.memory_per_graph_bytes)}"),
        ("max batch train/eval", lambda e: f"{e.max_train_batch_size}/{e.max_eval_batch_size}"),
        ("ms per graph train/eval",
         lambda e: f"{1e3 * e.train_seconds_per_graph:.2f}/{1e3 * e.eval_seconds_per_graph:.2f}"),
        ("epoch", lambda e: _seconds(e.epoch_seconds)),
        ("tuner (once)", lambda e: _seconds(e.tuner_seconds)),
        ("trial", lambda e: _seconds(e.trial_seconds)),
        ("driver before trials", lambda e: _seconds(before_trials(e))),
        ("worker start-up", lambda e: _seconds(e.parts["worker_start"])),
        ("study", lambda e: _seconds(e.study_seconds)),
        ("sbatch --time", lambda e: str(e.slurm["time"])),
        ("sbatch --nodes", lambda e: str(e.slurm["nodes"])),
        ("sbatch --mem", lambda e: str(e.slurm["mem"])),
        ("sbatch --gres", lambda e: str(e.slurm["gres"])),
    ]  # fmt: skip
    first = estimates[0]
    header = ["", *(e.dataset for e in estimates)]
    table = [header] + [[name] + [cell(e) for e in estimates] for name, cell in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        f"space {first.space}: {first.num_samples} trials of {first.epochs} epochs,"
        f" {first.max_concurrent} at a time; measured on {first.device}"
    ]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    lines += [f"note: {note}" for note in dict.fromkeys(n for e in estimates for n in e.notes)]
    return "\n".join(lines)


def _seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
