"""One search for the largest batch size that fits: its steps, aimed or Lightning's own."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.tuner import Tuner

from trainables.batching.heaviest import LargestFirst, ProbeDataModule, WorstBatches
from trainables.batching.oom import is_out_of_memory, release_memory
from trainables.batching.step_memory import StepMemory, largest_size_within
from trainables.batching.tuner.bracket import Bracket, record_outcome, search_hooks
from trainables.batching.tuner.settings import TunerMode, TunerSettings
from trainables.batching.tuner.training_state import TrainingState, clear_training_state
from trainables.data.dataset import CANGraphDataset

__all__ = ["Search", "quiet_trainer", "run_once"]

logger = logging.getLogger(__name__)

# Aimed steps before Lightning's binsearch takes over.
_AIM_ROUNDS = 6
# Lightning's doubling stops before a size past this share of the predicted maximum.
_DOUBLE_TO = 0.25
# A point this close to the prediction is near enough to aim at the prediction itself; from
# further below, the step goes this share of the way.
_NEAR = 0.8
# The top size is the answer without its own step when the memory line has its peak at most
# this share of the room, the line was measured at sizes of at least 1/_REACH of it, each of its
# three largest sizes at least _SPREAD times the weight of the one before, and the line through
# the two smaller predicted the largest's peak within _LINEAR (either way).
_CLEAR = 0.5
_REACH = 16
_SPREAD = 1.5
_LINEAR = 0.1


class Search:
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
        # The largest size worth running (no real batch holds more than the set), and the cap
        # of Lightning's search over the set cycled to 2N + 2 (see `probe_max_batch_size`).
        self.top = min(settings.max_val, self.num_graphs)
        self.max_probed = min(settings.max_val, 2 * self.num_graphs + 2)
        self.bracket = Bracket(settings.tolerance)
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
            length=self.max_probed,
        )
        with search_hooks(probe, self.bracket, self.meter, stop):
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
        max_val = self.max_probed
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
        # Last step's gradients go: this one allocates its own, with the optimiser's state, inside
        # its measured peak (`TrainingState`).
        clear_training_state(self.module)
        with record_outcome(self.bracket, size, self.meter):
            run_once(
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
        largest size that fits the room the budget has left, and every step refines it (in
        evaluation, the first size's peak alone gives a line: see `_memory_line`):

        - Lightning's power mode doubles from `init_val` until the next size would pass a
          quarter of the predicted maximum (or the whole set). Doubling on to the first size
          that runs out of memory, as its binsearch does, costs up to two steps near the
          maximum, which is where a step costs most. Where its first doubling would pass that
          quarter already, Lightning's search is not started at all.
        - A step then goes most of the way to the prediction (the line, fitted well below the
          maximum, is less sure there: peaks grow a little faster than linear), and from near
          it, to just under it. The whole set is tried once the line has it fitting.
        - The search is settled when the size within the tolerance above the largest that ran
          fails, or when the line through that size's own measured peak has it too heavy:
          measured, the failing step Lightning's binsearch ends on need not run.
        - A budget far larger than the data is the one exception to answering with a size that
          ran: where the line has the whole set (or the cap) clear by a wide margin (see
          `_clears_top`), the doubling stops and the set is the answer without its step, which
          would cost about an epoch of training on the whole set.

        The answer is otherwise always a size that ran, usually after two steps past the
        doubling.

        Returns:
            The answer, or None for Lightning's binsearch to go on from the largest size that
            ran: when the first size fails, after `_AIM_ROUNDS` steps, or when the peaks give
            no usable line.
        """
        bracket, tolerance = self.bracket, self.settings.tolerance
        top = self.top
        if bracket.settled(init_val) or not self.step(init_val):
            return None  # Lightning's binsearch bisects below a first size that fails
        if not self._doubled_enough(2 * init_val):  # else Lightning's first doubling stops
            self.lightning(init_val, self.max_probed, "power", stop=self._doubled_enough)
        for _ in range(_AIM_ROUNDS):
            if self._clears_top():
                logger.debug("tuner: %d fits with a wide margin, by the line: not run", top)
                return top
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
        if size >= self.top or self._clears_top():
            return True
        predicted = self._predicted(self.bracket.fitted, self.top)
        return predicted is not None and size > _DOUBLE_TO * predicted

    def _clears_top(self) -> bool:
        """Whether the top size (the whole set, or the cap) fits by so wide a margin that it
        needs no step of its own: nothing has failed, the largest size that ran is at least
        1/`_REACH` of the top, the three largest that ran are `_SPREAD` apart in weight (noise
        does not set the slope) and the line through the two smaller predicted the largest's
        peak within `_LINEAR` either way (peaks grow linearly in the batch's weight here, not
        faster; a one-off allocation in the middle one would flatten the line), and the line
        through the two largest has the top's peak at most `_CLEAR` of the room.

        On the models here the line's prediction at the top was within 1% (teacher GAT, 128 to
        1,200 graphs; student, 1,024 to 7,493) and 8% (student, 64 to 1,200). Peaks growing as a
        power of the weight up to 1.25 pass the linearity check and still stay under the margin
        at the top. What the step would cost is about an epoch of training on the whole set:
        on the synthetic default at the default budget, two thirds of the tuner's time.
        """
        bracket, weight = self.bracket, self._weight
        if bracket.failed is not None or bracket.fitted * _REACH < self.top:
            return False
        assert self.meter is not None
        sizes = self._measured_sizes()
        if len(sizes) < 3:
            return False
        (a, b, c) = sizes[-3:]
        if weight(b) < _SPREAD * weight(a) or weight(c) < _SPREAD * weight(b):
            return False
        through_ab = self._line_through(a, b)
        if through_ab is None:
            return False
        predicted_c = through_ab[0] + through_ab[1] * weight(c)
        if abs(bracket.peaks[c] - predicted_c) > _LINEAR * predicted_c:
            return False
        line = self._memory_line()
        if line is None:
            return False
        intercept, bytes_per_weight = line
        return intercept + bytes_per_weight * weight(self.top) <= _CLEAR * self.meter.room_bytes()

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
        allocates what stays, such as optimiser state); in evaluation, through zero and the one
        size that ran until there are two, and after, through zero and the larger of two whose
        line has a positive intercept; None without a line or with a slope <= 0."""
        sizes = self._measured_sizes()
        if len(sizes) == 1 and self.for_eval:
            # Evaluation keeps nothing from step to step (no gradients, no optimiser state): a
            # line through zero and its one peak is at least as steep as the true one, whose
            # intercept is >= 0, and errs low. The eval search starts at the train maximum, so
            # this aims its first step past it instead of doubling.
            (size,) = sizes
            slope = self.bracket.peaks[size] / self._weight(size)
            return (0.0, slope) if slope > 0 else None
        if len(sizes) < 2:
            return None
        (small, large) = sizes[-2:]
        line = self._line_through(small, large)
        if line is None:
            return None
        intercept, slope = line
        if self.for_eval and intercept > 0:
            # A step of evaluation keeps nothing for the next, so what the line puts at zero
            # weight is what the smaller step paid once (the first validation's library pages
            # and metric state, say): a line through it runs flat, and had the whole set fitting
            # where it did not (1 run in 5 at 24 MiB). The line through zero and the larger
            # point is steeper, and errs low.
            return 0.0, self.bracket.peaks[large] / self._weight(large)
        return intercept, slope

    def _measured_sizes(self) -> list[int]:
        """The sizes with a measured peak, smallest first, the module's first step left out
        where there are others (in training it also allocates what stays, such as optimiser
        state)."""
        sizes = sorted(self.bracket.peaks)
        if len(sizes) > 2 and self.bracket.first in sizes:
            sizes.remove(self.bracket.first)
        return sizes

    def _line_through(self, small: int, large: int) -> tuple[float, float] | None:
        """(intercept, slope) of peak bytes against weight through two measured sizes, or None
        where the larger is not heavier or the slope is not positive."""
        w_small, w_large = self._weight(small), self._weight(large)
        if w_large <= w_small:
            return None
        peak_large = self.bracket.peaks[large]
        slope = (peak_large - self.bracket.peaks[small]) / (w_large - w_small)
        return (peak_large - slope * w_large, slope) if slope > 0 else None


def run_once(
    module: pl.LightningModule,
    dataset: WorstBatches | CANGraphDataset,
    size: int,
    *,
    for_eval: bool,
    settings: TunerSettings,
    root: str,
) -> None:
    """`settings.steps_per_trial` steps of the heaviest batch of `size` graphs, on a fresh
    trainer: training steps, or evaluation steps `for_eval`, each with the optimiser state and
    gradients a run's steps have beside them (`TrainingState`)."""
    probe = ProbeDataModule(dataset, batch_size=size, for_eval=for_eval)
    trainer = quiet_trainer(
        root,
        limit_train_batches=settings.steps_per_trial,
        limit_val_batches=settings.steps_per_trial if for_eval else 0,
        callbacks=[TrainingState()],
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
