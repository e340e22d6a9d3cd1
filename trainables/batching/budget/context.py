"""`memory_budget`, and the default budget: check the device, then enter its CPU or CUDA budget."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from trainables.batching.budget.cpu import cpu_budget
from trainables.batching.budget.cuda import cuda_budget, cuda_index
from trainables.batching.budget.state import MemoryBudget
from trainables.batching.oom import release_memory
from trainables.batching.sizes import format_size
from trainables.batching.system_memory import (
    DEFAULT_MMAP_THRESHOLD_BYTES,
    available_memory_bytes,
    total_memory_bytes,
)
from trainables.errors import UserError

logger = logging.getLogger(__name__)

__all__ = [
    "BUDGET_GRANULARITY_BYTES",
    "check_cpu_budget",
    "default_budget_bytes",
    "memory_budget",
]


# Default budgets are rounded down to this, so that keys holding a budget (the frontier memo, the
# safety-factor store) stay the same while free memory drifts a little between trials.
BUDGET_GRANULARITY_BYTES = 256 * 1024 * 1024
_SUPPORTED_DEVICE_TYPES = ("cpu", "cuda")


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
        free_bytes, _ = torch.cuda.mem_get_info(cuda_index(device))
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
        UserError: A budget <= 0, a CPU budget past the machine's memory (`check_cpu_budget`),
            `num_concurrent_trials` < 1, a device other than CPU or CUDA, or CUDA asked for
            where it is not available.
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
    elif device.type == "cpu":
        check_cpu_budget(budget_bytes, option="memory budget")
    # Garbage of earlier work goes first: not into the baseline, and on CPU not counted by a
    # rebase as heap the budget's own stage freed.
    release_memory()
    if device.type == "cuda":
        with cuda_budget(budget_bytes, device=device) as budget:
            yield budget
    else:
        with cpu_budget(
            budget_bytes,
            device=device,
            mmap_threshold_bytes=mmap_threshold_bytes,
            sample_interval_s=sample_interval_s,
        ) as budget:
            yield budget


def check_cpu_budget(
    budget_bytes: int, *, option: str = "--memory-budget", concurrent: int = 1
) -> None:
    """A CPU budget past the memory this process can have (`total_memory_bytes`: the machine's,
    or a container's or SLURM job's cgroup limit) is an error.

    Its limit would never be reached: the kernel's OOM killer would end the trial first, which
    is what a budget is there to prevent, and the safety-factor store would record peaks of 0%
    for a budget no run can use. Where `/proc/meminfo` cannot be read, nothing is checked.

    With `concurrent` trials sharing the memory, a budget that fits once but not that many
    times is a warning: trials at their peaks at once may be killed rather than run out of
    memory.

    Raises:
        UserError: The budget is larger than the machine's memory; the message names `option`.
    """
    try:
        total = total_memory_bytes()
    except (OSError, KeyError):
        return
    if budget_bytes > total:
        raise UserError(
            f"{option} {format_size(budget_bytes)} is more than the memory this process can have "
            f"({format_size(total)}): on CPU the budget is a real limit, and past the memory "
            "the kernel's OOM killer would end the run first; give a smaller size, or leave "
            "it out for the default (free memory / concurrent trials)"
        )
    if budget_bytes * concurrent > total:
        logger.warning(
            "%s %s x %d concurrent trials is %s, more than the memory this process can have"
            " (%s): trials at their peaks at once may be killed by the kernel's OOM killer"
            " rather than fail as an out-of-memory result",
            option,
            format_size(budget_bytes),
            concurrent,
            format_size(budget_bytes * concurrent),
            format_size(total),
        )


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
