"""`memory_budget`: a real memory limit around one trial, and the peak it reached.

On CUDA the limit is PyTorch's per-process memory fraction; on CPU it is `RLIMIT_DATA`, so an
allocation past the budget fails with PyTorch's own "DefaultCPUAllocator: can't allocate memory"
error (or `MemoryError`), the same path a real out-of-memory takes.
"""

from __future__ import annotations

from trainables.batching.budget.context import (
    BUDGET_GRANULARITY_BYTES,
    check_cpu_budget,
    default_budget_bytes,
    memory_budget,
)
from trainables.batching.budget.state import MemoryBudget

__all__ = [
    "BUDGET_GRANULARITY_BYTES",
    "MemoryBudget",
    "check_cpu_budget",
    "default_budget_bytes",
    "memory_budget",
]
