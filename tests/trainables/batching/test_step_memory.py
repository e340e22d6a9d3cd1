from __future__ import annotations

import resource
from pathlib import Path

import pytest
import torch

from trainables.batching.budget import memory_budget
from trainables.batching.step_memory import StepMemory, largest_size_within

CPU = torch.device("cpu")


def _clear_refs_works() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def test_largest_size_within_finds_the_last_size_that_fits() -> None:
    weights = [0, 5, 9, 20, 21, 40]  # weight of the heaviest batch of each size (0 unused)
    assert largest_size_within(weights.__getitem__, 10.0, 210, low=1, high=5) == 4
    assert largest_size_within(weights.__getitem__, 10.0, 10_000, low=1, high=5) == 5
    assert largest_size_within(weights.__getitem__, 10.0, 1, low=2, high=5) == 2  # none: low
    with pytest.raises(ValueError, match="bytes_per_weight"):
        largest_size_within(weights.__getitem__, 0.0, 10, low=1, high=5)
    with pytest.raises(ValueError, match="empty range"):
        largest_size_within(weights.__getitem__, 1.0, 10, low=3, high=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU meter: this host has CUDA")
def test_the_cpu_meter_needs_a_budget() -> None:
    assert resource.getrlimit(resource.RLIMIT_DATA)[0] == resource.RLIM_INFINITY
    assert StepMemory.for_this_process() is None  # no limit: no room to aim at


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU meter: this host has CUDA")
@pytest.mark.skipif(not _clear_refs_works(), reason="this kernel keeps VmHWM from resets")
def test_the_cpu_meter_measures_a_steps_peak_and_the_room_left() -> None:
    size = 48 << 20
    with memory_budget(256 << 20, device=CPU):
        meter = StepMemory.for_this_process()
        assert meter is not None
        room = meter.room_bytes()
        assert 200 << 20 < room <= 256 << 20
        with meter.measure() as step:
            x = torch.ones(size, dtype=torch.uint8)  # written through: resident
            del x  # freed before the step ends: only the peak shows it
        # Resident growth: pages the process released meanwhile (a few hundred KiB) offset it.
        assert 0.98 * size <= step.bytes < size + (16 << 20)
        kept = torch.ones(size, dtype=torch.uint8)
        assert room - meter.room_bytes() >= size  # what stays is out of the room
        with meter.measure() as idle:
            pass
        assert idle.bytes < 4 << 20  # the peak starts afresh at each measure
        del kept


def test_a_meter_records_the_peak_of_a_step_that_fails() -> None:
    peaks = iter([100, 250])
    meter = StepMemory(room_bytes=lambda: 1000, begin=lambda: next(peaks), peak=lambda: 900)
    with pytest.raises(torch.OutOfMemoryError), meter.measure() as step:
        raise torch.OutOfMemoryError("past the budget")
    assert step.bytes == 800


def test_the_cuda_meter_reads_the_allocator_against_the_memory_fraction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No GPU here: the CUDA calls the meter makes are stood in for, the arithmetic is real.
    state = {"allocated": 3 << 30, "peak": 3 << 30, "resets": 0}

    def reset_peak(index: int) -> None:
        state["resets"] += 1
        state["peak"] = state["allocated"]

    cuda = torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "current_device", lambda: 0)
    monkeypatch.setattr(
        cuda, "get_device_properties", lambda index: type("P", (), {"total_memory": 80 << 30})
    )
    monkeypatch.setattr(cuda, "get_per_process_memory_fraction", lambda index: 0.25)
    monkeypatch.setattr(cuda, "memory_allocated", lambda index: state["allocated"])
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda index: state["peak"])
    monkeypatch.setattr(cuda, "reset_peak_memory_stats", reset_peak)
    meter = StepMemory.for_this_process()
    assert meter is not None
    assert meter.room_bytes() == (20 << 30) - (3 << 30)  # a quarter of 80 GiB, less what is held
    with meter.measure() as step:
        state["peak"] = 7 << 30  # a step that rose to 7 GiB and freed back to 3
    assert step.bytes == 4 << 30 and state["resets"] == 1
