"""The CPU budget: `RLIMIT_DATA` over the data segment at entry, and the peak of `VmData`."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator

import torch

from trainables.batching.budget.state import MemoryBudget
from trainables.batching.oom import release_memory
from trainables.batching.sizes import format_size
from trainables.batching.system_memory import (
    PeakMemorySampler,
    fix_malloc_thresholds,
    heap_free_bytes,
    process_memory_bytes,
)

__all__ = ["cpu_budget"]


@contextlib.contextmanager
def cpu_budget(
    budget_bytes: int,
    *,
    device: torch.device,
    mmap_threshold_bytes: int | None,
    sample_interval_s: float,
) -> Iterator[MemoryBudget]:
    """`memory_budget` on CPU: `RLIMIT_DATA` at `VmData` + the budget, restored on exit."""
    previous = resource.getrlimit(resource.RLIMIT_DATA)
    # Fail before starting threads, which an outer limit with no room left would break oddly.
    _limit_for(budget_bytes, baseline_bytes=process_memory_bytes("VmData"), previous=previous)
    if mmap_threshold_bytes is not None:
        fix_malloc_thresholds(mmap_threshold_bytes)
    _start_thread_pools()
    sampler = PeakMemorySampler("VmData", interval_s=sample_interval_s)
    budget: MemoryBudget | None = None
    try:
        # Measured after the sampler thread started, so its stack is not charged to the budget.
        baseline_bytes = process_memory_bytes("VmData")
        free_at_entry = heap_free_bytes()
        limit_bytes = _limit_for(budget_bytes, baseline_bytes=baseline_bytes, previous=previous)

        def read_peak_bytes() -> int:
            assert budget is not None
            return max(0, sampler.peak_bytes - budget.baseline_bytes)

        def rebase() -> None:
            assert budget is not None
            release_memory()
            resource.setrlimit(resource.RLIMIT_DATA, previous)
            # What the earlier stage grew the heap by and freed, glibc keeps: the next stage
            # reuses it without growing the data segment, so it is counted in that stage's
            # budget, not left as room beside it. Only what it grew the data segment by since
            # entry: memory in use before the budget (earlier work, other threads) and freed
            # since was never the budget's, and counting it put the limit below the segment.
            in_use_bytes = process_memory_bytes("VmData")
            grown_bytes = max(0, in_use_bytes - baseline_bytes)
            freed_bytes = min(grown_bytes, max(0, heap_free_bytes() - free_at_entry))
            budget.baseline_bytes = in_use_bytes - freed_bytes
            budget.limit_bytes = _limit_for(
                budget_bytes, baseline_bytes=budget.baseline_bytes, previous=previous
            )
            budget.budget_bytes = budget.limit_bytes - budget.baseline_bytes
            resource.setrlimit(resource.RLIMIT_DATA, (budget.limit_bytes, previous[1]))
            sampler.reset()

        budget = MemoryBudget(
            device=device,
            budget_bytes=limit_bytes - baseline_bytes,
            baseline_bytes=baseline_bytes,
            limit_bytes=limit_bytes,
            read_peak_bytes=read_peak_bytes,
            rebase=rebase,
        )
        try:
            resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, previous[1]))
            yield budget
        finally:
            resource.setrlimit(resource.RLIMIT_DATA, previous)
    finally:
        sampler.stop()
        if budget is not None:
            budget._finish()


def _limit_for(budget_bytes: int, *, baseline_bytes: int, previous: tuple[int, int]) -> int:
    """The `RLIMIT_DATA` soft limit for a budget: baseline + budget, never above the previous."""
    limit_bytes = baseline_bytes + budget_bytes
    for bound in previous:
        if bound != resource.RLIM_INFINITY:
            limit_bytes = min(limit_bytes, bound)
    if limit_bytes <= baseline_bytes:
        raise MemoryError(
            f"RLIMIT_DATA is already {format_size(previous[0])} with a data segment of"
            f" {format_size(baseline_bytes)}: no room for a memory budget"
        )
    return limit_bytes


def _start_thread_pools() -> None:
    # An op on more elements than ATen's grain size (32768) starts the OpenMP pool, whose thread
    # stacks (8 MiB each) would otherwise be charged to the first budget that runs one.
    torch.ones(1 << 16).add_(1)
