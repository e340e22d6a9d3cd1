"""`memory_budget`: a real memory limit around one trial, and the peak it reached.

On CUDA the limit is PyTorch's per-process memory fraction; on CPU it is `RLIMIT_DATA`, so an
allocation past the budget fails with PyTorch's own "DefaultCPUAllocator: can't allocate memory"
error (or `MemoryError`), the same path a real out-of-memory takes.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Callable, Iterator

import torch

from trainables.batching.oom import release_memory
from trainables.batching.sizes import format_size
from trainables.batching.system_memory import (
    DEFAULT_MMAP_THRESHOLD_BYTES,
    PeakMemorySampler,
    available_memory_bytes,
    fix_malloc_thresholds,
    process_memory_bytes,
)
from trainables.errors import UserError

__all__ = ["BUDGET_GRANULARITY_BYTES", "MemoryBudget", "default_budget_bytes", "memory_budget"]

# Default budgets are rounded down to this, so that keys holding a budget (the frontier memo, the
# safety-factor store) stay the same while free memory drifts a little between trials.
BUDGET_GRANULARITY_BYTES = 256 * 1024 * 1024
_SUPPORTED_DEVICE_TYPES = ("cpu", "cuda")


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
        batch-size tuner: what the earlier stage freed, but glibc keeps in its heaps and arenas
        (on CPU), is not charged to the next. On CUDA, freed memory goes back with
        `empty_cache`, so only the peak starts afresh.
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


def default_budget_bytes(device: torch.device, *, num_concurrent_trials: int = 1) -> int:
    """The budget a trial gets when none is given: free memory shared by the concurrent trials.

    CPU: `MemAvailable` / `num_concurrent_trials`; CUDA: the device's free memory
    (`torch.cuda.mem_get_info`) / `num_concurrent_trials`. Rounded down to a multiple of
    `BUDGET_GRANULARITY_BYTES` (256 MiB) where that leaves something, so that the budget, and keys
    holding it, do not change with small drifts of free memory.

    Args:
        device: The device the trial trains on.
        num_concurrent_trials: Trials sharing the memory at the same time; default 1.

    Returns:
        The budget in bytes.

    Raises:
        UserError: `num_concurrent_trials` < 1, or the device is neither CPU nor CUDA.
    """
    _check_device(device)
    if num_concurrent_trials < 1:
        raise UserError(
            f"num_concurrent_trials must be >= 1, got {num_concurrent_trials=};"
            " pass how many trials share this machine's memory at once"
        )
    if device.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(_cuda_index(device))
    else:
        free_bytes = available_memory_bytes()
    share = free_bytes // num_concurrent_trials
    return share // BUDGET_GRANULARITY_BYTES * BUDGET_GRANULARITY_BYTES or share


@contextlib.contextmanager
def memory_budget(
    budget_bytes: int | None,
    *,
    device: torch.device,
    num_concurrent_trials: int = 1,
    mmap_threshold_bytes: int | None = DEFAULT_MMAP_THRESHOLD_BYTES,
    sample_interval_s: float = 0.005,
) -> Iterator[MemoryBudget]:
    """Enforce a memory budget for the code inside, and measure its peak use.

    On entry, garbage from earlier work is released (`release_memory`). Then:

    - CUDA: `torch.cuda.set_per_process_memory_fraction(budget / total memory)`; the caching
      allocator raises `torch.OutOfMemoryError` past it. The previous fraction is restored on
      exit.
    - CPU: `RLIMIT_DATA` is set to the data segment in use at entry (`VmData`) plus the budget;
      PyTorch then raises "DefaultCPUAllocator: can't allocate memory" (Python: `MemoryError`)
      past it. Before that, glibc's malloc thresholds are fixed (see `fix_malloc_thresholds`) so
      that freed blocks leave the data segment and the limit measures live memory rather than
      heap fragmentation, and PyTorch's intra-op thread pool is started so that its stacks are
      not charged to the budget. The previous limit is restored on exit.

    The limit holds for the whole process: every thread, and child processes started inside the
    context, inherit it (a forked DataLoader worker gets the same headroom on top of its copy of
    the parent's data segment).

    Args:
        budget_bytes: The budget; None for `default_budget_bytes(device, num_concurrent_trials)`.
        device: The device the trial trains on (`cpu` or `cuda[:N]`).
        num_concurrent_trials: Trials sharing the memory, for the default budget; default 1.
        mmap_threshold_bytes: CPU: the malloc mmap threshold to fix, in bytes; default 128 KiB;
            None leaves the allocator alone.
        sample_interval_s: CPU: seconds between samples of `VmData` for the peak; default 0.005.

    Yields:
        The `MemoryBudget` in force; its `peak_bytes` is final once the context exits.

    Raises:
        UserError: A budget <= 0, `num_concurrent_trials` < 1, a device other than CPU or CUDA,
            or CUDA asked for where it is not available.
        MemoryError: CPU, an outer `RLIMIT_DATA` leaves no room at all for this budget.
    """
    _check_device(device)
    if budget_bytes is not None and budget_bytes <= 0:
        raise UserError(
            f"memory budget must be > 0 bytes, got {budget_bytes=}; give a size such as 4GiB,"
            " or none for the default (free memory / concurrent trials)"
        )
    if sample_interval_s <= 0:
        raise ValueError(f"sample_interval_s must be > 0, got {sample_interval_s=}")
    if budget_bytes is None:
        budget_bytes = default_budget_bytes(device, num_concurrent_trials=num_concurrent_trials)
    release_memory()
    if device.type == "cuda":
        with _cuda_budget(budget_bytes, device=device) as budget:
            yield budget
    else:
        with _cpu_budget(
            budget_bytes,
            device=device,
            mmap_threshold_bytes=mmap_threshold_bytes,
            sample_interval_s=sample_interval_s,
        ) as budget:
            yield budget


@contextlib.contextmanager
def _cuda_budget(budget_bytes: int, *, device: torch.device) -> Iterator[MemoryBudget]:
    index = _cuda_index(device)
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


@contextlib.contextmanager
def _cpu_budget(
    budget_bytes: int,
    *,
    device: torch.device,
    mmap_threshold_bytes: int | None,
    sample_interval_s: float,
) -> Iterator[MemoryBudget]:
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
        limit_bytes = _limit_for(budget_bytes, baseline_bytes=baseline_bytes, previous=previous)

        def read_peak_bytes() -> int:
            assert budget is not None
            return max(0, sampler.peak_bytes - budget.baseline_bytes)

        def rebase() -> None:
            assert budget is not None
            release_memory()
            resource.setrlimit(resource.RLIMIT_DATA, previous)
            budget.baseline_bytes = process_memory_bytes("VmData")
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


def _check_device(device: torch.device) -> None:
    if device.type not in _SUPPORTED_DEVICE_TYPES:
        raise UserError(
            f"memory budgets support devices {_SUPPORTED_DEVICE_TYPES}, got {str(device)!r};"
            " train on cpu or cuda, or run without a memory budget"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"device {str(device)!r} asked for, but torch.cuda.is_available() is False;"
            " use device cpu or a machine with a CUDA GPU"
        )


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()
