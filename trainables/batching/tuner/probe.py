"""The tuner's entry points: the largest batch sizes that fit, for training and evaluation."""

from __future__ import annotations

import dataclasses
import gc
import logging
import tempfile
import time
import warnings
from collections.abc import Callable

import pytorch_lightning as pl

from trainables.batching.frontier import Frontier
from trainables.batching.heaviest import WorstBatches
from trainables.batching.oom import release_memory
from trainables.batching.step_memory import StepMemory
from trainables.batching.tuner.search import Search, run_once
from trainables.batching.tuner.settings import TunerSettings
from trainables.data.dataset import CANGraphDataset
from trainables.errors import UserError

__all__ = ["PROBE_VERSION", "find_frontier", "probe_max_batch_size", "warm_up"]

logger = logging.getLogger(__name__)

# What a probed step measures; part of the frontier memo's key, so that maxima an earlier probe
# found are not reused. 2: every step with the optimiser state and gradients of a run's later
# steps beside it (`TrainingState`).
PROBE_VERSION = 2


def probe_max_batch_size(
    module: pl.LightningModule,
    dataset: WorstBatches | CANGraphDataset,
    *,
    for_eval: bool,
    settings: TunerSettings,
    meter: StepMemory | None = None,
) -> int:
    """The largest size of `dataset`'s heaviest batches that runs without OOM.

    `dataset` is the heaviest batches of each size (`HeaviestWindows` of a run's epochs, or
    `LargestFirst`), or a set already ordered largest first.

    `module` is consumed: the probe trains it for a few steps. An out-of-memory error at the
    smallest size propagates (nothing fits), and so does any other error.

    Two behaviours of Lightning's search are kept out of reach: it returns a size that reaches
    `max_val` without running it, and in binsearch mode a failing size at or past the dataset's
    length is retried forever. The probe set is therefore cycled to `2N + 2` graphs with
    `max_val = 2N + 2` (N = the set's size): the search meets neither branch before it has run
    a size >= N, and the answer is capped at N (no real batch holds more than the set).

    The whole set in one batch is tried first: when it fits, it is the answer, without the
    search's doublings past it (a budget larger than the data is the common case, and those
    steps were most of the tuner's time).

    In binsearch mode with `settings.aim` and a `meter` (default: `StepMemory.for_this_process`,
    None where there is no budget to measure against), the search is aimed (see
    `Search._aimed_search`).
    It tries the whole set once its memory line, measured on a few small steps, has it fitting,
    instead of first (where it does not fit, that step was the tuner's costliest), and where the
    line has it fitting by a wide margin, takes it without the step.
    """
    if len(dataset) == 0:
        raise UserError("cannot tune a batch size on an empty dataset")
    aimed = settings.aim and settings.mode == "binsearch"
    if aimed and meter is None:
        meter = StepMemory.for_this_process()
    with tempfile.TemporaryDirectory(prefix="batch-probe-") as root, warnings.catch_warnings():
        # A probe set of the largest graphs may hold one class only: metrics warn, and their
        # values are not what a probe is for.
        warnings.simplefilter("ignore", UserWarning)
        search = Search(
            module,
            dataset,
            for_eval=for_eval,
            settings=settings,
            root=root,
            meter=meter if aimed else None,
        )
        size = search.run()
        del search
    # The probe's trainer and module reference each other: collect them now, or their weights
    # and optimiser state stay allocated inside the budget the real run is about to use.
    module.trainer = None  # type: ignore[assignment]
    release_memory()
    return size


def find_frontier(
    make_module: Callable[[], pl.LightningModule],
    train_probe: WorstBatches | CANGraphDataset,
    eval_probe: CANGraphDataset,
    *,
    settings: TunerSettings,
    meter: StepMemory | None = None,
) -> Frontier:
    """Tuned maxima for training and evaluation, each probed on a fresh module (`meter`: see
    `probe_max_batch_size`)."""
    start = time.perf_counter()
    # Lightning collects garbage before every probed size; freezing what exists now (datasets,
    # cached graphs) keeps each collection to the probe's own objects: seconds saved per trial.
    gc.freeze()
    try:
        train_max = probe_max_batch_size(
            make_module(), train_probe, for_eval=False, settings=settings, meter=meter
        )
        # A batch that trains fits without gradients too: the eval search starts there,
        # sparing the doublings up to it (a larger first size found too heavy is bisected down).
        eval_settings = dataclasses.replace(settings, init_val=max(settings.init_val, train_max))
        eval_max = probe_max_batch_size(
            make_module(), eval_probe, for_eval=True, settings=eval_settings, meter=meter
        )
    finally:
        gc.unfreeze()
    logger.info(
        "tuner (%s): max train batch %d (probe set %d graphs), max eval batch %d "
        "(probe set %d graphs) in %.1f s",
        settings.mode,
        train_max,
        len(train_probe),
        eval_max,
        len(eval_probe),
        time.perf_counter() - start,
    )
    return Frontier(train_max, eval_max)


def warm_up(
    make_module: Callable[[], pl.LightningModule],
    train_probe: WorstBatches | CANGraphDataset,
    eval_probe: CANGraphDataset,
    *,
    settings: TunerSettings,
) -> float:
    """What the tuner's first steps leave in a process, without its search: one training step
    and one evaluation step of the smallest batch its search starts from. Returns the seconds.

    A process's first training and evaluation steps allocate what stays for its life (modules
    Lightning and PyTorch import on first use, their caches, the autograd engine's state). A
    process that ran the tuner has paid for that before training: on CPU, the budget's rebase
    after the tuner leaves it out of what training may use and of its peak. A process taking
    the maximum from the frontier memo paid it inside training's budget: at 10 MiB, 1-2.5 MiB of
    it, and peaks (which the adaptive factor store learns from) read that much higher than in
    the tuner's process at the same size. Running these two steps before the rebase makes a
    memo hit train under the budget the tuner's process trains under.
    """
    start = time.perf_counter()
    gc.freeze()  # as in `find_frontier`: Lightning collects garbage around its steps
    try:
        with (
            tempfile.TemporaryDirectory(prefix="batch-warm-up-") as root,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", UserWarning)  # as in `probe_max_batch_size`
            for probe, for_eval in ((train_probe, False), (eval_probe, True)):
                if len(probe) == 0:
                    continue
                module = make_module()
                run_once(
                    module,
                    probe,
                    min(settings.init_val, len(probe)),
                    for_eval=for_eval,
                    settings=settings,
                    root=root,
                )
                module.trainer = None  # type: ignore[assignment]
                del module
        release_memory()
    finally:
        gc.unfreeze()
    return time.perf_counter() - start
