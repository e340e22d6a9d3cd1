from __future__ import annotations

import doctest
import gc
import weakref

import pytest
import torch

from trainables.batching import oom
from trainables.batching.oom import is_out_of_memory, release_memory


@pytest.mark.parametrize(
    "exc",
    [
        MemoryError(),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total)"),
        RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronous"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate"
            " memory: you tried to allocate 314572800 bytes. Error code 12"
        ),
        RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if ..."),
        RuntimeError("CUDNN_STATUS_NOT_SUPPORTED"),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("CUDA out of memory.", "a second argument Lightning's check does not take"),
    ],
    ids=lambda exc: f"{type(exc).__name__}:{str(exc)[:30]}",
)
def test_is_out_of_memory_recognises_out_of_memory_errors(exc: BaseException) -> None:
    assert is_out_of_memory(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("out of memory"),
        RuntimeError("CUDA error: device-side assert triggered"),
        RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
        KeyboardInterrupt(),
        OSError(12, "Cannot allocate memory"),
    ],
    ids=lambda exc: f"{type(exc).__name__}:{str(exc)[:30]}",
)
def test_is_out_of_memory_rejects_other_errors(exc: BaseException) -> None:
    assert not is_out_of_memory(exc)


def test_is_out_of_memory_follows_explicit_causes() -> None:
    try:
        try:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")
        except RuntimeError as inner:
            raise ValueError("training step failed") from inner
    except ValueError as outer:
        assert is_out_of_memory(outer)


def test_is_out_of_memory_follows_implicit_contexts_several_levels_deep() -> None:
    try:
        try:
            try:
                raise MemoryError()
            except MemoryError:
                raise KeyError("batch") from None
        except KeyError:
            raise RuntimeError("trial failed") from None
    except RuntimeError as outer:
        # `from None` hides the context in tracebacks but keeps it on the exception.
        assert is_out_of_memory(outer)


def test_is_out_of_memory_stops_on_cyclic_chains() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert not is_out_of_memory(first)


def test_release_memory_frees_tensors_held_in_reference_cycles() -> None:
    class Holder:
        pass

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        holder = Holder()
        holder.self = holder  # type: ignore[attr-defined]
        holder.tensor = torch.empty(1 << 20)  # type: ignore[attr-defined]
        tensor_ref = weakref.ref(holder.tensor)  # type: ignore[attr-defined]
        del holder
        assert tensor_ref() is not None
        release_memory()
        assert tensor_ref() is None
    finally:
        if was_enabled:
            gc.enable()


def test_oom_docstring_examples_run() -> None:
    assert doctest.testmod(oom).failed == 0
