"""`MemoryBudget`: the budget in force inside `memory_budget`, and the peak measured against it."""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainables.batching.sizes import format_size

__all__ = ["MemoryBudget"]


class MemoryBudget:
    """The memory budget in force inside `memory_budget`, and the peak use measured against it.

    On CUDA the budget covers everything PyTorch's caching allocator holds on the device for this
    process (weights loaded before entry included) and `peak_bytes` is
    `torch.cuda.max_memory_allocated` since entry. On CPU the budget is growth of the process's
    data segment (`VmData`: heap and private anonymous mappings) over its size at entry, and
    `peak_bytes` is the largest growth seen by sampling `VmData` every `sample_interval_s` (a
    spike shorter than that can be missed; `VmData` counts address space that is mapped, used or
    not, such as new thread stacks and malloc arenas, so it is an upper bound on live tensors).

    Attributes:
        device: The device the budget applies to.
        budget_bytes: The budget in bytes (less than asked for where an outer limit is tighter).
        baseline_bytes: On CPU, `VmData` at entry; on CUDA, 0 (the budget is absolute).
        limit_bytes: The limit enforced: on CPU the `RLIMIT_DATA` soft limit (baseline + budget),
            on CUDA the device's total memory times the memory fraction set.

    Example:
        >>> import torch
        >>> from trainables.batching.budget import memory_budget
        >>> with memory_budget(512 * 2**20, device=torch.device("cpu")) as budget:
        ...     x = torch.ones(16 * 2**20, dtype=torch.uint8)
        >>> budget.budget_bytes, 0.0 <= budget.peak_fraction < 1.0
        (536870912, True)
    """

    def __init__(
        self,
        *,
        device: torch.device,
        budget_bytes: int,
        baseline_bytes: int,
        limit_bytes: int,
        read_peak_bytes: Callable[[], int],
        rebase: Callable[[], None] | None = None,
    ) -> None:
        self.device = device
        self.budget_bytes = budget_bytes
        self.baseline_bytes = baseline_bytes
        self.limit_bytes = limit_bytes
        self._read_peak_bytes = read_peak_bytes
        self._rebase = rebase
        self._final_peak_bytes: int | None = None

    def rebase(self) -> None:
        """Start the budget and its peak afresh from the memory in use now.

        For a stage that follows another in the same process, such as training after the
        batch-size tuner: what the earlier stage still holds is not charged to the next. On CPU,
        what it grew the heap by and freed, which glibc keeps (`heap_free_bytes` grown since
        entry, at most the data segment's growth), is counted as the next stage's, not given to
        it beside the budget: the next stage reuses those bytes without growing the data
        segment, so the limit would not see them, and the stage runs under the same budget as a
        fresh process. On CUDA, freed memory goes back with `empty_cache`, so only the peak
        starts afresh.
        """
        if self._rebase is not None:
            self._rebase()

    @property
    def peak_bytes(self) -> int:
        """Peak use against the budget so far (inside the context) or in all (after it)."""
        if self._final_peak_bytes is not None:
            return self._final_peak_bytes
        return self._read_peak_bytes()

    @property
    def peak_fraction(self) -> float:
        """`peak_bytes / budget_bytes`: 1.0 means the whole budget was used."""
        return self.peak_bytes / self.budget_bytes

    def _finish(self) -> None:
        self._final_peak_bytes = self._read_peak_bytes()

    def __repr__(self) -> str:
        return (
            f"MemoryBudget(device={str(self.device)!r}, budget={format_size(self.budget_bytes)},"
            f" peak={format_size(self.peak_bytes)} ({self.peak_fraction:.0%}))"
        )
