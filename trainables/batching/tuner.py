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

Where the budget can be measured (`trainables.batching.step_memory`), the search is aimed: a
line of each step's peak memory against its batch's nodes + edges stops Lightning's doubling at
a quarter of the maximum it predicts, then picks the next sizes, next to the maximum, in two or
three steps instead of a doubling to the first failure and about five bisection steps; a size
the line through the answer's own peak has too heavy is not run to be seen failing.
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
from trainables.batching.heaviest import LargestFirst, ProbeDataModule, WorstBatches
from trainables.batching.oom import is_out_of_memory, release_memory
from trainables.batching.step_memory import StepMemory, largest_size_within
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
        aim: In binsearch mode under a budget it can measure, stop Lightning's doubling
            early and replace its bisection by steps aimed at the maximum that the steps' peak
            memory predicts (default True; see `_Search._aimed_search`); False searches as
            Lightning does, after trying the whole set.

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
    aim: bool = True
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
    None where there is no budget to measure against), the search is aimed: see `_aimed_search`.
    It tries the whole set once its memory line, measured on a few small steps, has it fitting,
    instead of first (where it does not fit, that step was the tuner's costliest).
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
        search = _Search(
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


# Aimed steps before Lightning's binsearch takes over.
_AIM_ROUNDS = 6
# Lightning's doubling stops before a size past this share of the predicted maximum.
_DOUBLE_TO = 0.25
# A point this close to the prediction is near enough to aim at the prediction itself; from
# further below, the step goes this share of the way.
_NEAR = 0.8


class _Search:
    """One search for the largest size: what it runs, what it has learnt, and its steps."""

    def __init__(
        self,
        module: pl.LightningModule,
        dataset: WorstBatches | CANGraphDataset,
        *,
        for_eval: bool,
        settings: TunerSettings,
        root: str,
        meter: StepMemory | None,
    ) -> None:
        self.module = module
        self.dataset = dataset
        self.for_eval = for_eval
        self.settings = settings
        self.root = root
        self.num_graphs = len(dataset)
        self.bracket = _Bracket(settings.tolerance)
        self.meter = meter  # None: Lightning's search, unaimed
        # Nodes + edges of the heaviest batch of a size the probe serves.
        self._weight = (
            LargestFirst(dataset) if isinstance(dataset, CANGraphDataset) else dataset
        ).weight

    def run(self) -> int:
        settings, num_graphs, bracket = self.settings, self.num_graphs, self.bracket
        init_val = min(settings.init_val, num_graphs)
        if self.meter is not None:
            found = self._aimed_search(init_val)
            if found is not None:
                return found
            init_val = max(init_val, bracket.fitted)
        # The whole set in one batch is the answer whenever it fits; trying it before Lightning's
        # search spares its doublings past it (up to 2N + 2 graphs a step), most of its time
        # when the budget is generous, and when the search would start at the whole set (an
        # eval search from a train maximum past it) its step past it. Out of memory here, the
        # search runs as usual, and starting there, bisects down without rerunning it. (An
        # aimed search tries it itself, once its line predicts that it fits.)
        whole_set_open = bracket.fitted < num_graphs and not bracket.settled(num_graphs)
        if settings.max_val >= num_graphs and whole_set_open and self.step(num_graphs):
            logger.debug("tuner: the whole probe set (%d graphs) fits one batch", num_graphs)
            return num_graphs
        return self.plain(init_val)

    def step(self, size: int) -> bool:
        """`run_step`, an out-of-memory error answered as False: whether it fitted."""
        try:
            self.run_step(size)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            release_memory()
            return False
        return True

    def _measured(self, size: int) -> contextlib.AbstractContextManager[None]:
        return _outcome(self.bracket, size, self.meter)

    def lightning(
        self,
        init_val: int,
        max_val: int,
        mode: TunerMode | None = None,
        stop: Callable[[int], bool] | None = None,
    ) -> int:
        """Lightning's search from `init_val`, capped at `max_val`: the largest size that ran,
        or at `max_val` the cap itself, which Lightning returns without running it. A size
        `stop` returns True for is not run: the search backs off from it as from an OOM."""
        trainer = quiet_trainer(self.root)
        probe = ProbeDataModule(
            self.dataset,
            batch_size=init_val,
            for_eval=self.for_eval,
            length=min(self.settings.max_val, 2 * self.num_graphs + 2),
        )
        with _search_hooks(probe, self.bracket, self.meter, stop):
            found = Tuner(trainer).scale_batch_size(
                self.module,
                datamodule=probe,
                method="validate" if self.for_eval else "fit",
                mode=mode or self.settings.mode,
                steps_per_trial=self.settings.steps_per_trial,
                init_val=init_val,
                max_trials=self.settings.max_trials,
                margin=self.settings.margin,
                max_val=max_val,
            )
        return int(found or init_val)

    def plain(self, init_val: int) -> int:
        """Lightning's search as it runs without an aim, its answer capped at the set's size."""
        max_val = min(self.settings.max_val, 2 * self.num_graphs + 2)
        found = self.lightning(init_val, max_val)
        if found >= max_val and max_val < 2 * self.num_graphs + 2:
            # At a max_val set by the user below 2N + 2, the tuner returns it unrun.
            return self.run_step(min(found, self.num_graphs))
        return self.checked(found, init_val)

    def checked(self, found: int, init_val: int) -> int:
        """Lightning's answer capped at the set's size; below its first size it can be a size
        it never ran, which is run now, so that a budget too small for any batch surfaces as an
        out-of-memory error here, in the tuner stage."""
        size = min(found, self.num_graphs)
        if size > self.bracket.fitted and size <= init_val:
            return self.run_step(size)
        return size

    def run_step(self, size: int) -> int:
        """Run one step of `size` graphs, recorded in the bracket (measured when aimed); an
        out-of-memory error propagates. Returns `size`."""
        with self._measured(size):
            _run_once(
                self.module,
                self.dataset,
                size,
                for_eval=self.for_eval,
                settings=self.settings,
                root=self.root,
            )
        return size

    def _aimed_search(self, init_val: int) -> int | None:
        """Lightning's doubling up to a quarter of the maximum, then steps aimed at the maximum.

        A step's peak memory is close to linear in its batch's weight (nodes + edges). From the
        first two sizes that ran, a line through the peaks of the two largest predicts the
        largest size that fits the room the budget has left, and every step refines it:

        - Lightning's power mode doubles from `init_val` until the next size would pass a
          quarter of the predicted maximum (or the whole set). Doubling on to the first size
          that runs out of memory, as its binsearch does, costs up to two steps near the
          maximum, which is where a step costs most.
        - A step then goes most of the way to the prediction (the line, fitted well below the
          maximum, is less sure there: peaks grow a little faster than linear), and from near
          it, to just under it. The whole set is tried once the line has it fitting.
        - The search is settled when the size within the tolerance above the largest that ran
          fails, or when the line through that size's own measured peak has it too heavy:
          measured, the failing step Lightning's binsearch ends on need not run.

        The answer is always a size that ran, usually after two steps past the doubling.

        Returns:
            The answer, or None for Lightning's binsearch to go on from the largest size that
            ran: when the first size fails, after `_AIM_ROUNDS` steps, or when the peaks give
            no usable line.
        """
        bracket, tolerance = self.bracket, self.settings.tolerance
        top = min(self.settings.max_val, self.num_graphs)  # the largest size worth running
        if bracket.settled(init_val) or not self.step(init_val):
            return None  # Lightning's binsearch bisects below a first size that fails
        if init_val < top:
            max_val = min(self.settings.max_val, 2 * self.num_graphs + 2)
            self.lightning(init_val, max_val, "power", stop=self._doubled_enough)
        for _ in range(_AIM_ROUNDS):
            point = bracket.fitted
            high = top if bracket.failed is None else min(top, bracket.failed - 1)
            if point >= high or bracket.settled(point + 1):
                return point  # the next size up is known to fail, or within the tolerance
            predicted = self._predicted(point, high)
            if predicted is None:
                return None
            # The size whose failure settles the search at `point`.
            edge = min(high, max(point + 1, int(point * (1 + tolerance))))
            if predicted < edge:
                # The line runs through `point`'s measured peak, and has the edge too heavy.
                logger.debug(
                    "tuner: %d settled by its measured peak (%d predicted)", point, predicted
                )
                return point
            if predicted >= high and bracket.failed is None:
                self.step(high)  # the whole set (or the cap) fits, by the line: one step decides
                continue
            if point >= _NEAR * predicted:
                start = int(predicted * (1 - tolerance / 2))
            else:  # far below, the line is less sure (peaks grow a little faster than linear)
                start = point + int(_NEAR * (predicted - point))
            if bracket.failed is not None and predicted >= high:
                # The line has the smallest failure fitting: it runs low, by an unknown amount.
                # Bisect, as Lightning would.
                start = min(start, (point + bracket.failed) // 2)
            self.step(edge if start <= edge else min(start, high))
        logger.debug("tuner: the aimed search is unsettled after %d steps", _AIM_ROUNDS)
        return None

    def _doubled_enough(self, size: int) -> bool:
        """Whether Lightning's doubling should stop before `size`: it is the whole set (or the
        cap), or past `_DOUBLE_TO` of the maximum the measured peaks predict."""
        top = min(self.settings.max_val, self.num_graphs)
        if size >= top:
            return True
        predicted = self._predicted(self.bracket.fitted, top)
        return predicted is not None and size > _DOUBLE_TO * predicted

    def _predicted(self, low: int, high: int) -> int | None:
        """The largest size in [low, high] that the memory line has fitting the room left, or
        None without a line."""
        assert self.meter is not None
        line = self._memory_line()
        if line is None:
            return None
        intercept, bytes_per_weight = line
        room = int(self.meter.room_bytes() - intercept)
        return largest_size_within(self._weight, bytes_per_weight, room, low=low, high=high)

    def _memory_line(self) -> tuple[float, float] | None:
        """Peak bytes = intercept + slope x weight through the two largest measured sizes that
        ran, the module's first step left out where there are others (in training it also
        allocates what stays, such as optimiser state); None without two sizes or with a
        slope <= 0."""
        sizes = sorted(self.bracket.peaks)
        if len(sizes) > 2 and self.bracket.first in sizes:
            sizes.remove(self.bracket.first)
        if len(sizes) < 2:
            return None
        (small, large) = sizes[-2:]
        w_small, w_large = self._weight(small), self._weight(large)
        if w_large <= w_small:
            return None
        peak_small, peak_large = self.bracket.peaks[small], self.bracket.peaks[large]
        slope = (peak_large - peak_small) / (w_large - w_small)
        if slope <= 0:
            return None
        return peak_large - slope * w_large, slope


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
        self.peaks: dict[int, int] = {}  # size -> the peak bytes its step added, when measured
        self.first: int | None = None  # the first size that ran

    def record(self, size: int, *, fitted: bool, peak_bytes: int | None = None) -> None:
        if fitted:
            if self.first is None:
                self.first = size
            self.fitted = max(self.fitted, size)
            if peak_bytes is not None:
                self.peaks[size] = peak_bytes
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
    """A probed size answered without running: at or past one that failed, within the
    tolerance above the largest that ran, or where an aimed search stops Lightning's doubling.
    Lightning's search backs off from it as from an OOM."""


@contextlib.contextmanager
def _outcome(bracket: _Bracket, size: int, meter: StepMemory | None = None) -> Iterator[None]:
    """Record the outcome of a step of `size` graphs run inside, with its peak when measured; an
    out-of-memory error is recorded and propagates."""
    with meter.measure() if meter is not None else contextlib.nullcontext() as peak:
        try:
            yield
        except Exception as error:
            if is_out_of_memory(error):
                bracket.record(size, fitted=False)
            raise
    bracket.record(size, fitted=True, peak_bytes=None if peak is None else peak.bytes)


@contextlib.contextmanager
def _search_hooks(
    probe: ProbeDataModule,
    bracket: _Bracket,
    meter: StepMemory | None = None,
    stop: Callable[[int], bool] | None = None,
) -> Iterator[None]:
    """Lightning's search, seeing every out-of-memory error and stopping within the tolerance.

    - Its loop backs off only on a `RuntimeError` its own `is_oom_error` recognises. Under a CPU
      limit, an allocation outside PyTorch's allocator fails as `std::bad_alloc` (a RuntimeError
      it does not recognise), and one in Python or NumPy (collating a batch, say) as a
      `MemoryError` (not a RuntimeError at all): either would end the whole search as a hard
      error. So its classifier is ours, and a `MemoryError` in a probed step reaches it as a
      `torch.OutOfMemoryError` raised from it.
    - Each probed size's outcome goes into `bracket` (with its peak, measured by `meter` when
      given); a size it has settled is not run but raises `_Settled`, which the search takes
      for an OOM: it bisects down to the largest size that ran in a few steps that run nothing.
      A size at or below one that ran is not run either, and passes. Nor is a size `stop`
      returns True for: it raises `_Settled` too.

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
        if size <= bracket.fitted:
            return  # a lighter batch of the same graphs than one that ran: it fits
        if stop is not None and stop(size):
            raise _Settled(f"batch size {size}: the search stops before it")
        try:
            with _outcome(bracket, size, meter):
                original_run(trainer, params)
        except MemoryError as error:
            raise torch.OutOfMemoryError(f"out of memory in a probed step: {error!r}") from error

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
