"""The batch-size machinery of one trial: memory budget, out-of-memory handling, safety factor,
schedules, and the study-wide stores of tuned maxima and safety-factor outcomes."""

from trainables.batching.adaptive_factor import (
    AdaptationPolicy,
    SafetyFactorKey,
    SafetyFactorStore,
)
from trainables.batching.budget import (
    BUDGET_GRANULARITY_BYTES,
    MemoryBudget,
    default_budget_bytes,
    memory_budget,
)
from trainables.batching.frontier import (
    FRONTIER_FILE_NAME,
    Frontier,
    FrontierKey,
    FrontierMemo,
    config_fingerprint,
)
from trainables.batching.locked_json import LockedJsonFile, canonical_key, file_lock
from trainables.batching.lr_scaling import LrScaling, scale_learning_rate
from trainables.batching.oom import is_out_of_memory, release_memory
from trainables.batching.safety_factor import apply_safety_factor, resolve_eval_batch_size
from trainables.batching.schedules import (
    BatchSizeSchedule,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    PiecewiseSchedule,
    StepSchedule,
    log_batch_size_change,
    parse_schedule,
    schedule_from_dict,
)
from trainables.batching.sizes import format_size, parse_size
from trainables.batching.system_memory import (
    DEFAULT_MMAP_THRESHOLD_BYTES,
    PeakMemorySampler,
    available_memory_bytes,
    fix_malloc_thresholds,
    process_memory_bytes,
    trim_malloc,
)

__all__ = [
    "BUDGET_GRANULARITY_BYTES",
    "DEFAULT_MMAP_THRESHOLD_BYTES",
    "FRONTIER_FILE_NAME",
    "AdaptationPolicy",
    "BatchSizeSchedule",
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "Frontier",
    "FrontierKey",
    "FrontierMemo",
    "LinearSchedule",
    "LockedJsonFile",
    "LrScaling",
    "MemoryBudget",
    "PeakMemorySampler",
    "PiecewiseSchedule",
    "SafetyFactorKey",
    "SafetyFactorStore",
    "StepSchedule",
    "apply_safety_factor",
    "available_memory_bytes",
    "canonical_key",
    "config_fingerprint",
    "default_budget_bytes",
    "file_lock",
    "fix_malloc_thresholds",
    "format_size",
    "is_out_of_memory",
    "log_batch_size_change",
    "memory_budget",
    "parse_schedule",
    "parse_size",
    "process_memory_bytes",
    "release_memory",
    "resolve_eval_batch_size",
    "scale_learning_rate",
    "schedule_from_dict",
    "trim_malloc",
]
