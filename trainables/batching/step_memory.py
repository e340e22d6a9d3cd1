"""How much memory one probed step adds, and how much room the budget has left: the tuner's aim.

A batch's memory grows with its graphs' nodes and edges (its weight), close to linearly. Measured
on a few small steps, that gives the tuner a size to start its search at, next to the maximum,
instead of doubling up to it from 2 and bisecting back (each step near the maximum costs about a
training step of the run). The search still runs every size it returns but one: the whole set,
when the line has it at most half the room (`Search._clears_top`).

- CUDA: PyTorch's caching allocator keeps a resettable peak (`max_memory_allocated`); the room is
  the per-process memory fraction's share of the device less what is allocated.
- CPU: the kernel keeps a resettable peak of resident memory (`VmHWM`, reset by writing 5 to
  `/proc/self/clear_refs`); the room is `RLIMIT_DATA` less the data segment in use. Both count
  pages, and with glibc's mmap threshold fixed (as a CPU budget does) a tensor is its own mapping,
  written through, so a step's resident growth is its data segment's.

`StepMemory.for_this_process()` is None where neither can be measured (no CPU limit, no
`clear_refs`): the tuner then searches as Lightning does, from its first size.
"""

from __future__ import annotations

import contextlib
import math
import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from trainables.batching.system_memory import process_memory_bytes

__all__ = ["StepMemory", "StepPeak", "largest_size_within"]

_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_PEAK_RSS = "5"  # proc(5): reset the peak resident set size (VmHWM) to the current one


@dataclass
class StepPeak:
    """The peak bytes a measured step added over what was in use before it (0 until it ends)."""

    bytes: int = 0


@dataclass(frozen=True)
class StepMemory:
    """Measures probed steps' peak memory and the room left, on one kind of device.

    Args:
        room_bytes: Bytes the budget has left now.
        begin: Resets the peak and returns the bytes in use.
        peak: The peak bytes in use since the last `begin`.
    """

    room_bytes: Callable[[], int]
    begin: Callable[[], int]
    peak: Callable[[], int]

    @classmethod
    def for_this_process(cls) -> StepMemory | None:
        """The meter for the device Lightning's `accelerator="auto"` picks, or None if there is
        no budget to measure against or no way to measure (see the module docstring)."""
        if torch.cuda.is_available():
            return _cuda()
        return _cpu()

    @contextlib.contextmanager
    def measure(self) -> Iterator[StepPeak]:
        """Measure the code inside: its `StepPeak` holds the peak it added once it ends, even
        when it ends in an error (a step that ran out of memory)."""
        step = StepPeak()
        before = self.begin()
        try:
            yield step
        finally:
            step.bytes = max(0, self.peak() - before)


def _cuda() -> StepMemory:
    index = torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory

    def room_bytes() -> int:
        limit = int(total * torch.cuda.get_per_process_memory_fraction(index))
        return limit - torch.cuda.memory_allocated(index)

    def begin() -> int:
        torch.cuda.reset_peak_memory_stats(index)
        return torch.cuda.memory_allocated(index)

    return StepMemory(room_bytes, begin, lambda: torch.cuda.max_memory_allocated(index))


def _cpu() -> StepMemory | None:
    limit = resource.getrlimit(resource.RLIMIT_DATA)[0]
    if limit == resource.RLIM_INFINITY:
        return None  # no budget: nothing to aim at
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK_RSS)
        process_memory_bytes("VmHWM")
    except (OSError, KeyError):
        return None  # not Linux, or a kernel or sandbox that keeps the peak to itself

    def room_bytes() -> int:
        return resource.getrlimit(resource.RLIMIT_DATA)[0] - process_memory_bytes("VmData")

    def begin() -> int:
        _CLEAR_REFS.write_text(_RESET_PEAK_RSS)
        return process_memory_bytes("VmRSS")

    return StepMemory(room_bytes, begin, lambda: process_memory_bytes("VmHWM"))


def largest_size_within(
    weight: Callable[[int], int], bytes_per_weight: float, room_bytes: int, *, low: int, high: int
) -> int:
    """The largest size in [low, high] whose batch weight times `bytes_per_weight` fits in
    `room_bytes`, or `low` if none does (`weight` grows with the size).

    Example:
        >>> largest_size_within(lambda size: 10 * size, 2.0, 1000, low=1, high=1000)
        50
    """
    if low > high:
        raise ValueError(f"empty range [{low}, {high}]")
    if bytes_per_weight <= 0 or not math.isfinite(bytes_per_weight):
        raise ValueError(f"bytes_per_weight must be finite and > 0, got {bytes_per_weight}")
    while low < high:
        middle = (low + high + 1) // 2
        if weight(middle) * bytes_per_weight <= room_bytes:
            low = middle
        else:
            high = middle - 1
    return low
