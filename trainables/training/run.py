"""`run_training(config)`: one run of any mode, as a plain function (CLI and HPO trials call it).

It builds the data (training first the models a mode depends on, when no checkpoint is given)
and then, under the memory budget:

1. tuner: with `batching.tune`, finds the largest train and eval batch sizes on the worst-case
   batches (or takes them from the frontier memo);
2. factor: applies `max(1, floor(tuned max x safety factor))` once (or the batch size asked for,
   when that is smaller), derives the eval size, and expands the schedule into one size per epoch;
3. builds the model (inside the budget, as the tuner's probes build theirs), then trains,
   validates and tests it, verifying every epoch's number of batches.

An out-of-memory error in any stage ends the run cleanly with `oom=True` and `oom_stage`; any
other error propagates. Every run writes a new run directory: `model.pt`, `config.json` (every
resolved value, the batch sizes actually used included) and `metrics.json`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import secrets
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from trainables.batching.budget import MemoryBudget, memory_budget
from trainables.batching.frontier import (
    Frontier,
)
from trainables.batching.oom import is_out_of_memory, release_memory
from trainables.batching.safety_factor import apply_safety_factor, resolve_eval_batch_size
from trainables.batching.system_memory import fix_malloc_thresholds
from trainables.cli import is_interactive
from trainables.data.datamodule import CANGraphDataModule
from trainables.data.source import GraphSource
from trainables.errors import UserError
from trainables.modes.base import DetectionModule
from trainables.modes.logging import EpochLogLine
from trainables.training.callbacks import BatchSizeLearningRate, EpochHistory, StageTracker
from trainables.training.config import OomStage, RunResult, TrainConfig
from trainables.training.factors import record_factor_outcome, resolve_safety_factor
from trainables.training.files import plain, write_json
from trainables.training.frontier import tuned_frontier
from trainables.training.prerequisites import (
    PrerequisiteOutOfMemory,
    load_vgae,
    module_factory,
)

__all__ = ["build_datamodule", "new_run_dir", "run_training"]

logger = logging.getLogger("trainables.train")

_UNCAPPED = 1 << 30


def new_run_dir(out_dir: Path, name: str) -> Path:
    """A fresh directory `<out_dir>/<name>-<UTC time>-<random>`; never an existing one."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out_dir) / f"{name}-{stamp}-{secrets.token_hex(3)}"
    try:
        for folder in (Path(out_dir), *Path(out_dir).parents):
            if folder.exists():
                if not folder.is_dir():
                    raise UserError(f"--out {out_dir}: {folder} is a file, not a folder")
                break
        run_dir.mkdir(parents=True, exist_ok=False)
    except OSError as err:  # read-only, someone else's, a name too long: a traceback before
        raise UserError(
            f"--out {out_dir}: cannot make a run folder there ({err.strerror})"
        ) from None
    return run_dir


def run_training(
    config: TrainConfig, *, run_dir: Path | None = None, callbacks: Sequence[pl.Callback] = ()
) -> RunResult:
    """Train, validate and test one model as `config` says; see the module docstring."""
    if run_dir is not None:
        return _run(config, run_dir, callbacks)
    run_dir = new_run_dir(config.out_dir, f"{config.mode}-{config.resolved_size}")
    try:
        return _run(config, run_dir, callbacks)
    except BaseException:
        # A run stopped before it wrote anything (bad data, a damaged file, Ctrl-C) leaves no
        # empty directory behind in --out; a prerequisite model it finished training is kept.
        _remove_empty_folders(run_dir)
        raise


def _remove_empty_folders(top: Path) -> None:
    """Remove `top` and the folders under it that hold no file, deepest first."""
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty
    with contextlib.suppress(OSError):
        top.rmdir()


def _run(config: TrainConfig, run_dir: Path, callbacks: Sequence[pl.Callback]) -> RunResult:
    start = time.perf_counter()
    size = config.resolved_size
    logger.info("run %s: mode %s, size %s, %d epochs", run_dir, config.mode, size, config.epochs)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.batching.uses_budget and device.type == "cpu":
        # Fixed before the data work, not only when the budget starts: the blocks that loading
        # and curriculum's VGAE scoring free would otherwise stay in the heap, counted in the
        # budget's baseline and reused without growing it. On hcrl_sa at 96 MiB that loosened
        # the budget enough that tuned maxima ranged 252-368 run to run, and two runs ran out of
        # memory in training at sizes their tuners had passed (232-236 with this).
        fix_malloc_thresholds()
    # Before any data or prerequisite work: a damaged adaptive store stops the run at once.
    factor = resolve_safety_factor(config, device) if config.batching.tune else None
    pl.seed_everything(config.seed, verbose=False)
    datamodule = build_datamodule(config)
    datamodule.setup("fit")
    assert datamodule.vocab is not None and datamodule.train_set is not None
    assert datamodule.val_set is not None
    check_trainable(
        config.mode, config.source, datamodule.train_set.labels, num_val=len(datamodule.val_set)
    )
    held = single_class(datamodule.val_set.labels)
    if held is not None:
        # A study refuses such data (`hpo.prepare`); one run trains, and says so once instead
        # of torchmetrics' warning (with its source line) at every validation.
        logger.warning(
            "the validation split of %s (%d graphs) holds %s graphs only: val_auroc and the"
            " like are not defined on one class (they read 0.0)",
            config.source.dataset_name,
            len(datamodule.val_set),
            held,
        )
        warnings.filterwarnings("ignore", message=r"No (positive|negative) samples in targets")
    vocab_size = len(datamodule.vocab)
    prerequisites: dict[str, str] = {}
    # A model this run depends on ran out of memory while it trained first: this run ends out
    # of memory too (in that model's stage), a result like any other.
    prerequisite_oom: PrerequisiteOutOfMemory | None = None
    model_config: Any = None
    try:
        if config.mode == "curriculum":
            from trainables.modes.curriculum import CurriculumDataModule, score_graphs

            assert isinstance(datamodule, CurriculumDataModule)
            vgae = load_vgae(config, vocab_size, run_dir, prerequisites)
            datamodule.set_difficulty(score_graphs(vgae, datamodule.train_set))
        make_module = module_factory(config, vocab_size, run_dir, prerequisites)
        # The run's module is built inside the budget, after the tuner, as the tuner's probes
        # build theirs: on CPU its weights count against the budget as theirs did (on CUDA the
        # budget counts all the device holds anyway). Its architecture comes from one built and
        # dropped here.
        model_config = make_module().model.config
    except PrerequisiteOutOfMemory as err:
        prerequisite_oom = err
    module: DetectionModule | None = None

    batching = config.batching
    stage = StageTracker("tuner" if batching.tune else "train")
    history = EpochHistory()
    frontier: Frontier | None = None
    memo_hit = False
    tuner_seconds = 0.0
    oom_stage: OomStage | None = None
    sizes: list[int] = []
    ceiling: int | None = None  # tuned max x factor
    val: dict[str, float] = {}
    with _budget(config, device) as budget:
        history.budget = budget
        try:
            if prerequisite_oom is not None:
                raise prerequisite_oom
            if batching.tune:
                assert factor is not None
                tuner_start = time.perf_counter()
                with _interrupts_raised():  # Lightning's tuner turns Ctrl-C into exit 1 too
                    frontier, memo_hit = tuned_frontier(
                        config, datamodule, make_module, budget, device, model_config
                    )
                tuner_seconds = time.perf_counter() - tuner_start
                # Training gets the whole budget, with what the probes freed but glibc keeps
                # counted in it (as a fresh process taking the maximum from the memo has it).
                assert budget is not None
                budget.rebase()
                # The factor scales the tuned maximum once; a batch size asked for is kept
                # when it is smaller (the search's train batch size), never raised.
                ceiling = apply_safety_factor(frontier.train_max, factor)
                datamodule.batch_size = (
                    ceiling if config.batch_size is None else min(config.batch_size, ceiling)
                )
            initial = datamodule.batch_size
            sizes = batching.schedule.sizes_for_epochs(
                initial, config.epochs, frontier.train_max if frontier else _UNCAPPED
            )
            if frontier is not None:
                # From the size the first epoch trains at: a schedule may start below the
                # applied size (a `max_batch_size` under it, a milestone at epoch 0).
                datamodule.eval_batch_size = resolve_eval_batch_size(
                    applied_train=sizes[0],
                    eval_multiplier=batching.eval_multiplier,
                    eval_max=frontier.eval_max,
                    explicit=config.eval_batch_size,
                )
            datamodule.batch_sizes_per_epoch = sizes
            datamodule.batch_size = sizes[0]  # no "change" line for the first epoch
            _log_applied(config, datamodule, frontier, factor, sizes)
            stage.stage = "train"
            pl.seed_everything(config.seed, verbose=False)
            module = make_module()
            trainer = pl.Trainer(
                max_epochs=config.epochs,
                accelerator="auto",
                devices=1,
                logger=False,
                enable_checkpointing=False,
                enable_model_summary=False,
                enable_progress_bar=is_interactive(),
                num_sanity_val_steps=0,
                reload_dataloaders_every_n_epochs=int(
                    config.mode == "curriculum" or len(set(sizes)) > 1
                ),
                callbacks=[
                    stage,
                    history,
                    EpochLogLine(config.epochs),
                    BatchSizeLearningRate(
                        batching.schedule, base_lr=config.learning_rate, base_batch_size=initial
                    ),
                    *callbacks,
                ],
            )
            # Training's randomness (shuffles, dropout) must not depend on whether the tuner
            # probed first: a run replayed from its config.json then trains identically.
            pl.seed_everything(config.seed, verbose=False)
            with _interrupts_raised(), warnings.catch_warnings():
                if module.frozen:
                    # In eval mode on purpose: Lightning's warning about exactly these says
                    # nothing (about one more, it still would).
                    frozen = sum(len(list(getattr(module, n).modules())) for n in module.frozen)
                    warnings.filterwarnings("ignore", rf"Found {frozen} module\(s\) in eval mode")
                trainer.fit(module, datamodule=datamodule)
            val = {  # before testing, which resets the callback metrics
                name.removeprefix("val_"): float(value)
                for name, value in trainer.callback_metrics.items()
                if name.startswith("val_")
            }
            if datamodule.test_sets:
                module.test_split_names = list(datamodule.test_sets)
                with _interrupts_raised():
                    trainer.test(module, datamodule=datamodule, verbose=False)
        except BaseException as err:
            if not is_out_of_memory(err):
                raise
            oom_stage = stage.stage if prerequisite_oom is None else prerequisite_oom.stage
            logger.warning(
                "run %s: out of memory in stage %s (%s)",
                run_dir,
                oom_stage,
                str(err).splitlines()[0][:200] if str(err) else type(err).__name__,
            )
            release_memory()

    oom = oom_stage is not None
    if oom:
        val = {}
    if not oom:
        assert module is not None
        torch.save(module.model.state_dict(), run_dir / "model.pt")
    peak = budget.peak_bytes if budget is not None else None
    applied_none = not sizes  # out of memory before a size applied (tuner, prerequisite)
    result = RunResult(
        mode=config.mode,
        size=size,
        epochs=config.epochs,
        run_dir=run_dir,
        val=val,
        test={} if oom or module is None else module.test_results,
        # None out of memory in the tuner: no size was applied (the datamodule's is a default).
        train_batch_size=None if applied_none else sizes[0] if sizes else datamodule.batch_size,
        eval_batch_size=None if applied_none else datamodule.eval_batch_size,
        batch_sizes_per_epoch=sizes,
        # The first epoch's, at `train_batch_size` (each epoch's is in `history`).
        num_train_batches_per_epoch=None
        if applied_none
        else int(history.epochs[0]["num_train_batches"])
        if history.epochs
        else math.ceil(len(datamodule.train_set) / datamodule.batch_size),
        seconds=time.perf_counter() - start,
        history=history.epochs,
        tuned_max_batch_size=frontier.train_max if frontier else None,
        tuned_max_eval_batch_size=frontier.eval_max if frontier else None,
        safety_factor=factor,
        tuner_seconds=tuner_seconds,
        memo_hit=memo_hit,
        memory_budget_bytes=budget.budget_bytes if budget is not None else None,
        peak_memory_bytes=peak,
        device=device.type,
        oom=oom,
        oom_stage=oom_stage,
        oom_prerequisite=None if prerequisite_oom is None else prerequisite_oom.name,
    )
    write_json(
        run_dir / "config.json",
        {
            **plain(dataclasses.asdict(config)),
            "size": size,
            "dataset": config.source.dataset_name,
            "vocab_size": vocab_size,
            "model": None if model_config is None else plain(dataclasses.asdict(model_config)),
            "device": device.type,
            "memory_budget_bytes": result.memory_budget_bytes,
            "tuned_max_batch_size": result.tuned_max_batch_size,
            "tuned_max_eval_batch_size": result.tuned_max_eval_batch_size,
            "safety_factor": factor,
            "train_batch_size": result.train_batch_size,
            "eval_batch_size": result.eval_batch_size,
            "batch_sizes_per_epoch": sizes,
            "prerequisites": prerequisites,
        },
    )
    write_json(run_dir / "metrics.json", {**result.to_json(), "history": history.epochs})
    # After the run's own files: whatever happens to the shared store, the run is kept.
    if factor is not None and budget is not None and prerequisite_oom is None:
        record_factor_outcome(
            config,
            device,
            factor=factor,
            ceiling=ceiling,
            sizes=sizes,
            peak_fraction=None if oom else budget.peak_fraction,
            oom_stage=oom_stage,
        )
    if oom:
        logger.info(
            "run %s ended out of memory (%s) in %.1f s", run_dir, oom_stage, result.seconds
        )
    else:
        logger.info(
            "run %s done in %.1f s: %s",
            run_dir,
            result.seconds,
            " ".join(f"val_{k} {v:.4f}" for k, v in val.items()),
        )
    return result


def check_trainable(mode: str, source: GraphSource, labels: np.ndarray, *, num_val: int) -> None:
    """Stop a run whose training split (the graphs' labels, 1 = attack) has nothing `mode`
    trains on: no graphs, no attack graphs for a supervised mode, no normal ones for the
    autoencoder (trained on normal traffic only), or too few graphs to hold out `num_val` > 0
    for validation."""
    where = f"the training split of {source.dataset_name}"
    if mode == "autoencoder" and (labels == 1).all():
        raise UserError(f"--mode autoencoder trains on normal graphs but {where} has none")
    if len(labels) == 0:
        raise UserError(f"{where} has no graphs (fewer messages than --window?)")
    if mode != "autoencoder" and not labels.any():
        raise UserError(f"--mode {mode} is supervised but {where} has no attack graphs")
    if num_val == 0:
        # A run trained with no validation metric (Lightning's and torchmetrics' warnings, an
        # empty "done" line) and a study's every trial scored nothing.
        raise UserError(
            f"the validation split of {source.dataset_name} is empty: {where} has only"
            f" {len(labels)} graphs (a class needs 2 to hold one out); lower --window, or give"
            " more captures"
        )


def single_class(labels: np.ndarray) -> str | None:
    """`"attack"` or `"normal"` when the non-empty `labels` (1 = attack) are all that class;
    None when both are there, or none at all."""
    if len(labels) == 0 or (labels.any() and not labels.all()):
        return None
    return "attack" if labels.all() else "normal"


def build_datamodule(config: TrainConfig) -> CANGraphDataModule:
    """The datamodule a run of `config` trains on (not yet set up)."""
    kwargs: dict[str, Any] = dict(
        batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        val_fraction=config.val_fraction,
        seed=config.seed,
    )
    if config.mode == "curriculum":
        from trainables.modes.curriculum import CurriculumDataModule

        return CurriculumDataModule(config.source, num_epochs=config.epochs, **kwargs)
    return CANGraphDataModule(
        config.source, train_on_normal_only=config.mode == "autoencoder", **kwargs
    )


@contextlib.contextmanager
def _budget(config: TrainConfig, device: torch.device) -> Iterator[MemoryBudget | None]:
    if not config.batching.uses_budget:
        yield None
        return
    batching = config.batching
    with memory_budget(
        batching.memory_budget if batching.memory_budget is not None else batching.default_budget,
        device=device,
        num_concurrent_trials=config.batching.num_concurrent_trials,
    ) as budget:
        yield budget


def _log_applied(
    config: TrainConfig,
    datamodule: CANGraphDataModule,
    frontier: Frontier | None,
    factor: float | None,
    sizes: list[int],
) -> None:
    train = datamodule.train_set
    assert train is not None
    num_graphs = (
        len(train) if not hasattr(datamodule, "epoch_sample") else len(datamodule.epoch_sample(0))
    )  # type: ignore[attr-defined]
    tuned = (
        f"tuned max {frontier.train_max} (eval {frontier.eval_max}) x factor {factor} -> "
        if frontier
        else ""
    )
    if frontier and config.batch_size is not None:
        tuned += f"asked for {config.batch_size} -> "
    schedule = (
        ""
        if len(set(sizes)) <= 1
        else f", schedule {config.batching.schedule.type}: {sizes[0]} -> {sizes[-1]}"
    )
    logger.info(
        "batch size: %sapplied train %d, eval %d, %d batches/epoch (%d graphs)%s",
        tuned,
        sizes[0],
        datamodule.eval_batch_size,
        math.ceil(num_graphs / sizes[0]),
        num_graphs,
        schedule,
    )


@contextlib.contextmanager
def _interrupts_raised() -> Iterator[None]:
    """Ctrl-C inside `fit` or `test` reaches the caller as `KeyboardInterrupt`.

    Lightning answers it with `sys.exit(1)` after setting SIGINT to be ignored, so the CLI would
    exit 1 without a word, and a second Ctrl-C would do nothing. Here it is raised again (the
    CLI: "interrupted", exit 130) with the handler from before put back.
    """
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    except SystemExit as exit_:
        if not isinstance(exit_.__context__, KeyboardInterrupt):
            raise  # a SystemExit of someone else's
        if main and handler is not None:
            signal.signal(signal.SIGINT, handler)
        raise KeyboardInterrupt from None
