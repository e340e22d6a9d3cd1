"""Find the largest batch sizes that fit, with Lightning's tuner, on the worst-case batches.

Lightning's `Tuner.scale_batch_size` grows a batch size until it runs out of memory. Two things
decide whether its answer holds for a whole run, and both are fixed here:

- What it probes. It steps through whatever the datamodule serves; shuffled, typical batches
  give a maximum that an epoch meeting the largest graphs first exceeds. Here every probed step
  is the heaviest batch of its size the run will meet (`trainables.batching.heaviest`): the
  heaviest consecutive graphs of the orders its epochs train in, or the largest graphs.
- What it restores. It checkpoints and restores the model it probes; here the probe runs on a
  throwaway module and trainer, so training starts from a model the tuner never touched.

Its `margin` (a hidden 5% reduction in binsearch mode) is set to 0: the trial's safety factor is
the only factor applied. The eval maximum is probed separately (no gradients: it is larger).

Its binsearch bisects down to one graph; near the maximum every probed step costs about a
training step of the run. Here it stops once the largest size that ran and the smallest that ran
out of memory are within `TunerSettings.tolerance` of each other: sizes between them are answered
as too large without running, so the answer is always a size that ran, at most `tolerance` below
what the full bisection would return.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.tuner import Tuner, batch_size_scaling

from trainables.batching.frontier import Frontier
from trainables.batching.heaviest import ProbeDataModule, WorstBatches
from trainables.batching.oom import is_out_of_memory, release_memory
from trainables.data.dataset import CANGraphDataset
from trainables.errors import UserError

__all__ = ["TunerMode", "TunerSettings", "find_frontier", "probe_max_batch_size", "quiet_trainer"]

logger = logging.getLogger(__name__)

TunerMode = Literal["power", "binsearch"]


@dataclass(frozen=True)
class TunerSettings:
    """How Lightning's batch-size tuner searches.

    Args:
        mode: `binsearch` (double until OOM, then bisect; default) or `power` (double only).
        steps_per_trial: Steps run at each probed size (default 1: the probe serves the
            heaviest batch first, so one step meets the worst case).
        init_val: First size probed (default 2; `find_frontier` starts the eval search at the
            train maximum when that is larger).
        max_trials: Most sizes probed (default 25).
        max_val: Largest size probed (default 65536; also capped at the probe set's size).
        tolerance: The binsearch stops once the gap between the largest size that ran and the
            smallest that ran out of memory is at most this fraction of the former (default
            0.03; 0 bisects down to one graph, as Lightning does).

    Example:
        >>> TunerSettings(mode="power").margin
        0.0
    """

    mode: TunerMode = "binsearch"
    steps_per_trial: int = 1
    init_val: int = 2
    max_trials: int = 25
    max_val: int = 1 << 16
    tolerance: float = 0.03
    margin: float = 0.0  # never a hidden second safety factor

    def __post_init__(self) -> None:
        if self.mode not in ("power", "binsearch"):
            raise UserError(f"--tuner-mode must be power or binsearch, got {self.mode!r}")
        if not 0.0 <= self.tolerance < 1.0:
            raise UserError(f"--tuner-tolerance must be in [0, 1), got {self.tolerance}")
        for name in ("steps_per_trial", "init_val", "max_trials", "max_val"):
            if getattr(self, name) < 1:
                raise UserError(f"tuner {name} must be >= 1, got {getattr(self, name)}")


def probe_max_batch_size(
    module: pl.LightningModule,
    dataset: WorstBatches | CANGraphDataset,
    *,
    for_eval: bool,
    settings: TunerSettings,
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
    """
    if len(dataset) == 0:
        raise UserError("cannot tune a batch size on an empty dataset")
    num_graphs = len(dataset)
    max_val = min(settings.max_val, 2 * num_graphs + 2)
    bracket = _Bracket(settings.tolerance)
    with tempfile.TemporaryDirectory(prefix="batch-probe-") as root, warnings.catch_warnings():
        # A probe set of the largest graphs may hold one class only: metrics warn, and their
        # values are not what a probe is for.
        warnings.simplefilter("ignore", UserWarning)
        if settings.max_val >= num_graphs:
            # The whole set in one batch is the answer whenever it fits; trying it first spares
            # the search's doublings past it (up to 2N + 2 graphs a step), most of its time
            # when the budget is generous, and when the search would start at the whole set (an
            # eval search from a train maximum past it) its step past it. Out of memory here,
            # the search runs as usual, and starting there, bisects down without rerunning it.
            try:
                _run_once(
                    module, dataset, num_graphs, for_eval=for_eval, settings=settings, root=root
                )
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                bracket.record(num_graphs, fitted=False)
                release_memory()
            else:
                logger.debug("tuner: the whole probe set (%d graphs) fits one batch", num_graphs)
                module.trainer = None  # type: ignore[assignment]
                release_memory()
                return num_graphs
        trainer = quiet_trainer(root)
        init_val = min(settings.init_val, num_graphs)
        probe = ProbeDataModule(dataset, batch_size=init_val, for_eval=for_eval, length=max_val)
        with _search_hooks(probe, bracket):
            found = Tuner(trainer).scale_batch_size(
                module,
                datamodule=probe,
                method="validate" if for_eval else "fit",
                mode=settings.mode,
                steps_per_trial=settings.steps_per_trial,
                init_val=init_val,
                max_trials=settings.max_trials,
                margin=settings.margin,
                max_val=max_val,
            )
        found = int(found or probe.batch_size)
        size = min(found, num_graphs)
        if size > bracket.fitted and (
            size <= init_val or (found >= max_val and max_val < 2 * num_graphs + 2)
        ):
            # Below its first size, or at a max_val set by the user below 2N + 2, the tuner can
            # return a size it never ran: run it now, so that a budget too small for any batch
            # surfaces as an out-of-memory error here, in the tuner stage.
            _run_once(module, dataset, size, for_eval=for_eval, settings=settings, root=root)
        del trainer, probe
    # The probe's trainer and module reference each other: collect them now, or their weights
    # and optimiser state stay allocated inside the budget the real run is about to use.
    module.trainer = None  # type: ignore[assignment]
    release_memory()
    return size


class _Bracket:
    """What a search has learnt: the largest size that ran and the smallest that ran out of memory.

    A size at or past one that ran out of memory needs no step (a heavier batch of the same
    graphs fails too), and neither does a size past the largest that ran once the two are within
    `tolerance` of each other: the search may stop there.
    """

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.fitted = 0
        self.failed: int | None = None

    def record(self, size: int, *, fitted: bool) -> None:
        if fitted:
            self.fitted = max(self.fitted, size)
        else:
            self.failed = size if self.failed is None else min(self.failed, size)

    def settled(self, size: int) -> bool:
        """Whether `size` is known to fail, or past what the search still needs to run."""
        if self.failed is None:
            return False
        if size >= self.failed:
            return True
        gap = self.failed - self.fitted
        return 0 < self.fitted < size and gap <= self.tolerance * self.fitted


class _Settled(RuntimeError):
    """A probed size answered without running: at or past one that failed, or within the
    tolerance above the largest that ran. Lightning's search backs off from it as from an OOM."""


@contextlib.contextmanager
def _search_hooks(probe: ProbeDataModule, bracket: _Bracket) -> Iterator[None]:
    """Lightning's search, seeing every out-of-memory error and stopping within the tolerance.

    - Its loop backs off only on a `RuntimeError` its own `is_oom_error` recognises. Under a CPU
      limit, an allocation outside PyTorch's allocator fails as `std::bad_alloc` (a RuntimeError
      it does not recognise), and one in Python or NumPy (collating a batch, say) as a
      `MemoryError` (not a RuntimeError at all): either would end the whole search as a hard
      error. So its classifier is ours, and a `MemoryError` in a probed step reaches it as a
      `torch.OutOfMemoryError` raised from it.
    - Each probed size's outcome goes into `bracket`; a size it has settled is not run but
      raises `_Settled`, which the search takes for an OOM: it bisects down to the largest size
      that ran in a few steps that run nothing.

    Both swaps are scoped to the probe and undone after.
    """
    original_is_oom, original_run = (
        batch_size_scaling.is_oom_error,
        batch_size_scaling._try_loop_run,
    )

    def is_oom_error(exception: BaseException) -> bool:
        return isinstance(exception, _Settled) or is_out_of_memory(exception)

    def try_loop_run(trainer: pl.Trainer, params: dict[str, Any]) -> None:
        size = probe.batch_size
        if bracket.settled(size):
            raise _Settled(f"batch size {size} is settled: the search stops below it")
        try:
            original_run(trainer, params)
        except MemoryError as error:
            bracket.record(size, fitted=False)
            raise torch.OutOfMemoryError(f"out of memory in a probed step: {error!r}") from error
        except RuntimeError as error:
            if is_out_of_memory(error):
                bracket.record(size, fitted=False)
            raise
        bracket.record(size, fitted=True)

    batch_size_scaling.is_oom_error = is_oom_error
    batch_size_scaling._try_loop_run = try_loop_run
    try:
        yield
    finally:
        batch_size_scaling.is_oom_error = original_is_oom
        batch_size_scaling._try_loop_run = original_run


def _run_once(
    module: pl.LightningModule,
    dataset: WorstBatches | CANGraphDataset,
    size: int,
    *,
    for_eval: bool,
    settings: TunerSettings,
    root: str,
) -> None:
    probe = ProbeDataModule(dataset, batch_size=size, for_eval=for_eval)
    trainer = quiet_trainer(
        root,
        limit_train_batches=settings.steps_per_trial,
        limit_val_batches=settings.steps_per_trial if for_eval else 0,
    )
    if for_eval:
        trainer.validate(module, datamodule=probe, verbose=False)
    else:
        trainer.fit(module, datamodule=probe)


def quiet_trainer(root: str, **kwargs: Any) -> pl.Trainer:
    """A one-epoch, single-device Trainer that writes, logs and checks nothing of its own (no
    logger, checkpoints, progress bar, summary or sanity check); `kwargs` add to or override it."""
    options: dict[str, Any] = dict(
        accelerator="auto",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
    )
    return pl.Trainer(**{**options, **kwargs})


def find_frontier(
    make_module: Callable[[], pl.LightningModule],
    train_probe: WorstBatches | CANGraphDataset,
    eval_probe: CANGraphDataset,
    *,
    settings: TunerSettings,
) -> Frontier:
    """Tuned maxima for training and evaluation, each probed on a fresh module."""
    start = time.perf_counter()
    # Lightning collects garbage before every probed size; freezing what exists now (datasets,
    # cached graphs) keeps each collection to the probe's own objects: seconds saved per trial.
    gc.freeze()
    try:
        train_max = probe_max_batch_size(
            make_module(), train_probe, for_eval=False, settings=settings
        )
        # A batch that trains fits without gradients too: the eval search starts there,
        # sparing the doublings up to it (a larger first size found too heavy is bisected down).
        eval_settings = dataclasses.replace(settings, init_val=max(settings.init_val, train_max))
        eval_max = probe_max_batch_size(
            make_module(), eval_probe, for_eval=True, settings=eval_settings
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
