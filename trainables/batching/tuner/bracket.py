"""What a search has learnt, and the hooks through which it sees Lightning's steps.

`Bracket` holds the largest size that ran and the smallest that ran out of memory; `search_hooks`
swaps two functions of Lightning's `batch_size_scaling` for the length of one search, so that every
out-of-memory error reaches its loop as one and every probed size's outcome reaches the bracket.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.tuner import batch_size_scaling

from trainables.batching.heaviest import ProbeDataModule
from trainables.batching.oom import is_out_of_memory
from trainables.batching.step_memory import StepMemory
from trainables.batching.tuner.training_state import (
    clear_training_state,
    fill_optimizer_state,
    hold_training_state,
)

__all__ = ["Bracket", "Settled", "record_outcome", "search_hooks"]


class Bracket:
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


class Settled(RuntimeError):
    """A probed size answered without running: at or past one that failed, within the
    tolerance above the largest that ran, or where an aimed search stops Lightning's doubling.
    Lightning's search backs off from it as from an OOM."""


@contextlib.contextmanager
def record_outcome(bracket: Bracket, size: int, meter: StepMemory | None = None) -> Iterator[None]:
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
def search_hooks(
    probe: ProbeDataModule,
    bracket: Bracket,
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
      given); a size it has settled is not run but raises `Settled`, which the search takes
      for an OOM: it bisects down to the largest size that ran in a few steps that run nothing.
      A size at or below one that ran is not run either, and passes. Nor is a size `stop`
      returns True for: it raises `Settled` too.
    - Each step it runs starts without optimiser state and gradients and allocates them first
      (`training_state`), inside its measured peak, as every probed step does.

    Both swaps are scoped to the probe and undone after.
    """
    original_is_oom, original_run = (
        batch_size_scaling.is_oom_error,
        batch_size_scaling._try_loop_run,
    )

    def is_oom_error(exception: BaseException) -> bool:
        return isinstance(exception, Settled) or is_out_of_memory(exception)

    def try_loop_run(trainer: pl.Trainer, params: dict[str, Any]) -> None:
        size = probe.batch_size
        if bracket.settled(size):
            raise Settled(f"batch size {size} is settled: the search stops below it")
        if size <= bracket.fitted:
            return  # a lighter batch of the same graphs than one that ran: it fits
        if stop is not None and stop(size):
            raise Settled(f"batch size {size}: the search stops before it")
        module = trainer.lightning_module
        clear_training_state(module, trainer.optimizers)
        try:
            with record_outcome(bracket, size, meter), contextlib.ExitStack() as state:
                # Lightning turns callbacks off in its search: `TrainingState`'s work, here.
                if probe.for_eval:
                    state.enter_context(hold_training_state(module))
                for optimizer in trainer.optimizers:
                    fill_optimizer_state(optimizer)
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
