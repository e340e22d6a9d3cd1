"""Telling out-of-memory errors from other failures, and cleaning up after one."""

from __future__ import annotations

import gc

import torch

from trainables.batching.system_memory import trim_malloc

__all__ = ["is_out_of_memory", "release_memory"]

# Messages that mean "no memory" which Lightning's `is_oom_error` misses: it checks only
# single-argument RuntimeErrors and the exact cuDNN sentence with its "cuDNN error: " prefix.
_OUT_OF_MEMORY_MESSAGES = (
    "DefaultCPUAllocator: can't allocate memory",
    "CUDNN_STATUS_NOT_SUPPORTED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUBLAS_STATUS_ALLOC_FAILED",
    # C++ allocations outside PyTorch's allocator (e.g. inside scatter kernels) under a CPU
    # memory limit surface as RuntimeError("std::bad_alloc").
    "std::bad_alloc",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception, or one it was raised from, means the device ran out of memory.

    Recognised: `MemoryError`; `torch.OutOfMemoryError` (which `torch.cuda.OutOfMemoryError`
    names); whatever Lightning's `is_oom_error` recognises ("CUDA out of memory", "CUDA error:
    out of memory", PyTorch's "DefaultCPUAllocator: can't allocate memory" and cuDNN's
    CUDNN_STATUS_NOT_SUPPORTED, which cuDNN reports for inputs too big for its workspace); and
    RuntimeErrors naming CUDNN_STATUS_ALLOC_FAILED or CUBLAS_STATUS_ALLOC_FAILED. The exception's
    `__cause__` and `__context__` chain is searched too, since frameworks wrap errors (contexts
    hidden with `raise ... from None` included: the memory ran out all the same).

    Args:
        exc: The exception caught.

    Returns:
        True when it (or an exception in its chain) is an out-of-memory error.

    Example:
        >>> is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
        True
        >>> try:
        ...     try:
        ...         raise MemoryError()
        ...     except MemoryError as inner:
        ...         raise ValueError("batch failed") from inner
        ... except ValueError as outer:
        ...     is_out_of_memory(outer)
        True
        >>> is_out_of_memory(ValueError("bad shape"))
        False
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if _is_out_of_memory_itself(current):
            return True
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


def release_memory() -> None:
    """Free what a finished or failed trial left, so the next trial here gets its full budget.

    Runs the garbage collector (tensors in reference cycles, such as a traceback's frames), empties
    PyTorch's CUDA cache where CUDA is in use (Lightning's `garbage_collection_cuda`), and gives
    free heap memory back to the kernel (`malloc_trim` on glibc).
    """
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        from pytorch_lightning.utilities.memory import garbage_collection_cuda

        garbage_collection_cuda()
    trim_malloc()


def _is_out_of_memory_itself(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    # Imported here: importing pytorch_lightning takes seconds, and a trial has done it already.
    from pytorch_lightning.utilities.memory import is_oom_error

    if is_oom_error(exc):
        return True
    message = str(exc)
    return any(text in message for text in _OUT_OF_MEMORY_MESSAGES) or (
        "CUDA" in message and "out of memory" in message
    )
