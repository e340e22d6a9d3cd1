"""The CUDA budget: PyTorch's per-process memory fraction, and the allocator's peak."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from trainables.batching.budget.state import MemoryBudget
from trainables.batching.oom import release_memory

__all__ = ["cuda_budget", "cuda_index"]


@contextlib.contextmanager
def cuda_budget(budget_bytes: int, *, device: torch.device) -> Iterator[MemoryBudget]:
    """`memory_budget` on CUDA: the per-process memory fraction, restored on exit."""
    index = cuda_index(device)
    total_bytes = torch.cuda.get_device_properties(index).total_memory
    previous_fraction = torch.cuda.get_per_process_memory_fraction(index)
    # Never loosen a fraction someone set outside this context.
    fraction = min(budget_bytes / total_bytes, previous_fraction)
    budget = MemoryBudget(
        device=device,
        budget_bytes=min(budget_bytes, int(total_bytes * fraction)),
        baseline_bytes=0,
        limit_bytes=int(total_bytes * fraction),
        read_peak_bytes=lambda: torch.cuda.max_memory_allocated(index),
        rebase=lambda: _cuda_rebase(index),
    )
    torch.cuda.reset_peak_memory_stats(index)
    try:
        torch.cuda.set_per_process_memory_fraction(fraction, index)
        yield budget
    finally:
        torch.cuda.set_per_process_memory_fraction(previous_fraction, index)
        budget._finish()


def _cuda_rebase(index: int) -> None:
    release_memory()
    torch.cuda.reset_peak_memory_stats(index)


def cuda_index(device: torch.device) -> int:
    """The index of a CUDA device: its own, or the current device's for a bare `cuda`."""
    return device.index if device.index is not None else torch.cuda.current_device()
