"""`python -m trainables.train --mode MODE`: train one model, without Ray.

Every run writes a new run directory under `--out` (weights, the frozen config with the batch
sizes actually used, metrics). Modes that need other models (curriculum and fusion need a VGAE,
fusion a GAT, kd a teacher GAT) take their checkpoints as options or train them first.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from trainables.cli import configure_logging, run_cli
from trainables.data.options import add_source_arguments, source_from_args

if TYPE_CHECKING:
    from trainables.training import TrainConfig


def build_parser() -> argparse.ArgumentParser:
    from trainables.training.names import MODEL_SIZE_NAMES, MODES

    parser = argparse.ArgumentParser(
        prog="python -m trainables.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=MODES, help="required unless --config is given")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="re-run a finished run: its run directory or config.json (the "
        "batch sizes it used, its models, its memory budget; only --out and --json may be given"
        " with it)",
    )
    parser.add_argument(
        "--size",
        choices=MODEL_SIZE_NAMES,
        default=None,
        help="model preset (default: student for kd, teacher otherwise)",
    )
    add_source_arguments(parser)
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="training batch size (64); with --tune-batch-size, the most to use (the tuned"
        " maximum x the safety factor caps it)",
    )
    train.add_argument(
        "--eval-batch-size",
        type=int,
        default=None,
        help="validation/test batch size (default: --batch-size)",
    )
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--val-fraction", type=float, default=0.2)
    train.add_argument(
        "--out", type=Path, default=Path("runs"), help="where run directories are created (runs/)"
    )
    train.add_argument("--json", action="store_true", help="print one JSON object")
    batch = parser.add_argument_group("tuner-plus-factor batch sizes")
    batch.add_argument(
        "--tune-batch-size",
        action="store_true",
        help="find the largest batch that fits (Lightning's tuner on the "
        "worst-case batches), scale it by --safety-factor, apply it",
    )
    batch.add_argument(
        "--memory-budget",
        default=None,
        help="device-memory budget, e.g. 4GiB (default: available memory)",
    )
    batch.add_argument(
        "--safety-factor",
        default=None,
        help="share of the tuned maximum to apply, in (0, 1], or 'auto' for "
        "the adaptive store's recommendation (default 0.9)",
    )
    batch.add_argument(
        "--eval-multiplier",
        type=float,
        default=None,
        help="eval batch = min(train batch x this, eval maximum) (2)",
    )
    batch.add_argument(
        "--schedule",
        default=None,
        help='batch-size schedule as JSON, e.g. \'{"type": "step", "step_size": 2, "gamma": 2}\'',
    )
    batch.add_argument(
        "--tuner-mode",
        choices=("binsearch", "power"),
        default=None,
        help="Lightning's search mode (binsearch)",
    )
    batch.add_argument(
        "--tuner-tolerance",
        type=float,
        default=None,
        help="binsearch stops once its largest fitting and smallest failing sizes are within "
        "this fraction of each other (default 0.03; 0 bisects to one graph)",
    )
    batch.add_argument(
        "--no-tuner-aim",
        dest="tuner_aim",
        action="store_const",
        const=False,
        default=None,
        help="binsearch doubles to the first failure and bisects blind, as Lightning's does, "
        "instead of aiming its steps by their measured peak memory",
    )
    batch.add_argument(
        "--frontier-memo",
        type=Path,
        default=None,
        help="tuned-maximum memo file (default <out>/batch_size_frontier.json)",
    )
    batch.add_argument(
        "--factor-store",
        type=Path,
        default=None,
        help="adaptive safety-factor store that --safety-factor auto reads and tuned runs update"
        " (default $BATCH_HPO_CACHE or ~/.cache/batch-hpo, safety_factors.json)",
    )
    deps = parser.add_argument_group("models a mode depends on (trained first when omitted)")
    deps.add_argument("--teacher", type=Path, help="kd: teacher GAT run directory or model.pt")
    deps.add_argument("--vgae", type=Path, help="curriculum, fusion: VGAE run dir or model.pt")
    deps.add_argument("--gat", type=Path, help="fusion: GAT run directory or model.pt")
    deps.add_argument(
        "--prerequisite-epochs",
        type=int,
        default=None,
        help="epochs for models trained first (default: --epochs)",
    )
    deps.add_argument("--kd-temperature", type=float, default=None, help="kd (4)")
    deps.add_argument("--kd-alpha", type=float, default=None, help="kd (0.7)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.mode is None and args.config is None:
        parser.error("--mode is required (or --config to re-run a finished run)")
    configure_logging()
    from trainables.training import TrainConfig, run_training
    from trainables.training.files import json_text

    if args.config is not None:
        _check_replay_options(parser, args)
        config = TrainConfig.reproducing(args.config, out_dir=args.out)
    else:
        config = _config_from_args(args)
    result = run_training(config)
    if args.json:
        print(json_text(result.to_json()))
    else:
        print(
            f"{result.mode} ({result.size}): "
            + ", ".join(f"val_{name} {value:.4f}" for name, value in result.val.items())
        )
        for split, metrics in result.test.items():
            print(f"  test {split}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if result.oom:
            print(f"  out of memory in stage {result.oom_stage}")
        if result.tuned_max_batch_size is not None:
            print(
                f"  tuned max {result.tuned_max_batch_size} (eval "
                f"{result.tuned_max_eval_batch_size}) x factor {result.safety_factor}"
            )
        if result.train_batch_size is not None:
            print(
                f"  batch size {result.train_batch_size} (eval {result.eval_batch_size}), "
                f"{result.num_train_batches_per_epoch} batches/epoch, {result.seconds:.1f} s"
            )
        print(f"  run directory: {result.run_dir}")
    return 0


_REPLAY_OPTIONS = ("config", "out", "json")


def _check_replay_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`--config` re-runs a run as it was: an option that would change it is an error, not
    silently dropped (where the run directory goes and the output may change)."""
    from trainables.errors import UserError

    given = [
        action.option_strings[0]
        for action in parser._actions
        if action.option_strings
        and action.dest not in (*_REPLAY_OPTIONS, "help")
        and getattr(args, action.dest) != action.default
    ]
    if given:
        raise UserError(
            f"--config re-runs {args.config} as it was: {', '.join(given)} cannot be given with it"
            " (only --out and --json)"
        )


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    from trainables.batching.schedules import ConstantSchedule, parse_schedule
    from trainables.batching.sizes import parse_memory_size
    from trainables.batching.tuner import TunerSettings
    from trainables.errors import UserError
    from trainables.training import BatchTuning, TrainConfig
    from trainables.training.names import PREREQUISITES

    if args.eval_multiplier is not None and args.eval_batch_size is not None:
        # The eval size given wins over the multiple: the multiplier would be silently ignored.
        raise UserError(
            f"--eval-multiplier {args.eval_multiplier:g} and --eval-batch-size"
            f" {args.eval_batch_size} both set the eval batch size; give one of them"
        )
    roles = PREREQUISITES.get(args.mode, ())
    unused = [
        option
        for option, value, used in (
            *(
                (f"--{role}", getattr(args, role), role in roles)
                for role in ("teacher", "vgae", "gat")
            ),
            ("--prerequisite-epochs", args.prerequisite_epochs, bool(roles)),
            ("--kd-temperature", args.kd_temperature, args.mode == "kd"),
            ("--kd-alpha", args.kd_alpha, args.mode == "kd"),
        )
        if value is not None and not used
    ]
    if unused:
        # A model or setting the mode does not use was silently ignored.
        raise UserError(f"{', '.join(unused)}: not used by --mode {args.mode}; leave it out")
    untuned = [
        option
        for option, value in (
            ("--safety-factor", args.safety_factor),
            ("--eval-multiplier", args.eval_multiplier),
            ("--tuner-mode", args.tuner_mode),
            ("--tuner-tolerance", args.tuner_tolerance),
            ("--no-tuner-aim", args.tuner_aim),
            ("--frontier-memo", args.frontier_memo),
            ("--factor-store", args.factor_store),
        )
        if value is not None
    ]
    if untuned and not args.tune_batch_size:
        # They act on the tuner or its maximum: without it they would be silently ignored.
        raise UserError(f"{', '.join(untuned)}: tuner options; add --tune-batch-size")
    tuner = TunerSettings(mode=args.tuner_mode or "binsearch", aim=args.tuner_aim is None)
    if args.tuner_tolerance is not None:
        tuner = dataclasses.replace(tuner, tolerance=args.tuner_tolerance)
    budget = (
        None
        if args.memory_budget is None
        else parse_memory_size(args.memory_budget, option="--memory-budget")
    )
    if budget is not None:
        import torch

        from trainables.batching.budget import check_cpu_budget

        if not torch.cuda.is_available():
            check_cpu_budget(budget)  # before the data work, not once it is done
    batching = BatchTuning(
        tune=args.tune_batch_size,
        memory_budget=budget,
        safety_factor=_safety_factor(args.safety_factor),
        **({} if args.eval_multiplier is None else {"eval_multiplier": args.eval_multiplier}),
        schedule=ConstantSchedule() if args.schedule is None else parse_schedule(args.schedule),
        tuner=tuner,
        memo_path=args.frontier_memo,
        factor_store_path=args.factor_store,
    )

    return TrainConfig(
        mode=args.mode,
        size=args.size,
        source=source_from_args(args),
        epochs=args.epochs,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        val_fraction=args.val_fraction,
        out_dir=args.out,
        teacher=args.teacher,
        vgae=args.vgae,
        gat=args.gat,
        prerequisite_epochs=args.prerequisite_epochs,
        **({} if args.kd_temperature is None else {"kd_temperature": args.kd_temperature}),
        **({} if args.kd_alpha is None else {"kd_alpha": args.kd_alpha}),
        batching=batching,
    )


def _safety_factor(text: str | None) -> float | Literal["auto"]:
    from trainables.errors import UserError
    from trainables.training import DEFAULT_SAFETY_FACTOR

    if text is None:
        return DEFAULT_SAFETY_FACTOR
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise UserError(
            f"--safety-factor must be a number in (0, 1] or 'auto', got {text!r}"
        ) from None


if __name__ == "__main__":
    sys.exit(run_cli(main))
