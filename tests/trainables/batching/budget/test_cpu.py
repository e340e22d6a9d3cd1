"""`trainables.batching.budget.cpu`: a real `RLIMIT_DATA` budget, its peak and its rebase."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tests.trainables.batching.budget._budgets import CPU, GiB, MiB, needs_glibc
from trainables.batching.budget import memory_budget
from trainables.batching.oom import is_out_of_memory

_REPO_ROOT = Path(__file__).resolve().parents[4]

# Run in a fresh interpreter: glibc's dynamic mmap threshold can only be observed before anything
# fixes it, and fixing it lasts for the life of the process.
_FRAGMENTATION_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from trainables.batching.budget import memory_budget

    MiB = 1 << 20
    threshold = None if sys.argv[1] == "none" else int(sys.argv[1])
    # Earlier work in this process freed a 24 MiB block: glibc now serves blocks below that from
    # the heap, where they stay after they are freed.
    torch.empty(24 * MiB, dtype=torch.uint8)
    with memory_budget(256 * MiB, device=torch.device("cpu"), mmap_threshold_bytes=threshold):
        blocks = []
        for _ in range(10):
            blocks.append(torch.empty(16 * MiB, dtype=torch.uint8))
            blocks.append(torch.empty(MiB, dtype=torch.uint8))  # live blocks in between
        blocks = [block for block in blocks if block.numel() == MiB]
        # 10 MiB are live; without the fix the heap still holds the 160 MiB freed around them.
        try:
            grown = torch.empty(200 * MiB, dtype=torch.uint8)
        except RuntimeError as exc:
            print("out of memory:", exc)
        else:
            print("fits")
    """
)


# A stage that leaves 64 MiB of holes in the heap, then one that takes heap blocks until the limit
# stops it (32 KiB: half fits in the holes; glibc's aligned allocations cannot use the rest).
# Fresh interpreter: this process's heap has free chunks of its own history.
_HEAP_HOLES_SCRIPT = textwrap.dedent(
    """
    import torch
    from trainables.batching.budget import memory_budget

    KiB, MiB = 1 << 10, 1 << 20
    with memory_budget(96 * MiB, device=torch.device("cpu")) as budget:
        # 64 KiB blocks come from the heap (below the 128 KiB mmap threshold); the 16 KiB ones
        # kept between them stop the freed blocks joining the heap's top and being trimmed.
        blocks, kept = [], []
        for _ in range(1024):
            blocks.append(torch.empty(64 * KiB, dtype=torch.uint8))
            kept.append(torch.empty(16 * KiB, dtype=torch.uint8))
        del blocks
        budget.rebase()
        got = []
        try:
            while True:
                got.append(torch.empty(32 * KiB, dtype=torch.uint8))
        except (RuntimeError, MemoryError):
            pass
    print(len(got) * 32 * KiB)
    """
)


# Heap blocks in use before a 32 MiB budget, freed inside it: the heap then holds 64 MiB free
# that the budget's stage never grew it by.
_FREED_FROM_BEFORE_SCRIPT = textwrap.dedent(
    """
    import torch
    from trainables.batching.budget import memory_budget
    from trainables.batching.system_memory import fix_malloc_thresholds

    KiB, MiB = 1 << 10, 1 << 20
    fix_malloc_thresholds()
    blocks, kept = [], []
    for _ in range(1024):
        blocks.append(torch.empty(64 * KiB, dtype=torch.uint8))
        kept.append(torch.empty(16 * KiB, dtype=torch.uint8))
    with memory_budget(32 * MiB, device=torch.device("cpu")) as budget:
        del blocks
        budget.rebase()
        grown = torch.ones(16 * MiB, dtype=torch.uint8)
    print("fits")
    """
)


def _run_script(script: str) -> str:
    """`script`'s output, run in a fresh interpreter; it must succeed."""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=_REPO_ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def _run_fragmentation_script(threshold: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _FRAGMENTATION_SCRIPT, threshold],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=_REPO_ROOT,
    )


@needs_glibc
def test_memory_budget_cpu_measures_live_memory_and_restores_the_limit() -> None:
    previous = resource.getrlimit(resource.RLIMIT_DATA)
    with memory_budget(256 * MiB, device=CPU) as budget:
        assert resource.getrlimit(resource.RLIMIT_DATA) == (budget.limit_bytes, previous[1])
        assert budget.limit_bytes == budget.baseline_bytes + 256 * MiB
        for _ in range(5):
            block = torch.empty(100 * MiB, dtype=torch.uint8)
            block.fill_(1)
            del block
        blocks = [torch.ones(4 * MiB, dtype=torch.uint8) for _ in range(25)]
        del blocks
        grown = torch.empty(200 * MiB, dtype=torch.uint8)
        del grown
        with pytest.raises(
            RuntimeError, match="DefaultCPUAllocator: can't allocate memory"
        ) as info:
            torch.empty(300 * MiB, dtype=torch.uint8)
        assert is_out_of_memory(info.value)
        with pytest.raises(MemoryError):
            bytearray(300 * MiB)
    assert resource.getrlimit(resource.RLIMIT_DATA) == previous
    assert torch.empty(GiB, dtype=torch.uint8).numel() == GiB


@needs_glibc
def test_memory_budget_cpu_fixed_mmap_threshold_stops_heap_fragmentation_tripping_it() -> None:
    with_fix = _run_fragmentation_script(str(128 * 1024))
    without_fix = _run_fragmentation_script("none")
    fixed_out, fixed_err = with_fix.communicate(timeout=60)
    dynamic_out, dynamic_err = without_fix.communicate(timeout=60)
    assert with_fix.returncode == 0, fixed_err
    assert without_fix.returncode == 0, dynamic_err
    assert fixed_out.strip() == "fits"
    assert "DefaultCPUAllocator: can't allocate memory" in dynamic_out


@needs_glibc
def test_memory_budget_cpu_restores_the_limit_when_the_body_raises() -> None:
    previous = resource.getrlimit(resource.RLIMIT_DATA)
    with (
        pytest.raises(RuntimeError, match="can't allocate memory"),
        memory_budget(64 * MiB, device=CPU),
    ):
        torch.empty(128 * MiB, dtype=torch.uint8)
    assert resource.getrlimit(resource.RLIMIT_DATA) == previous


@needs_glibc
def test_memory_budget_cpu_peak_is_the_largest_growth_of_the_data_segment() -> None:
    with memory_budget(512 * MiB, device=CPU, sample_interval_s=0.001) as budget:
        block = torch.ones(128 * MiB, dtype=torch.uint8)
        assert 128 * MiB <= budget.peak_bytes < 512 * MiB
        del block
        small = torch.ones(MiB, dtype=torch.uint8)
        del small
    assert 128 * MiB <= budget.peak_bytes < 160 * MiB
    assert budget.peak_fraction == pytest.approx(budget.peak_bytes / (512 * MiB))
    assert "budget=512MiB" in repr(budget)


@needs_glibc
def test_memory_budget_cpu_rebase_gives_the_next_stage_the_whole_budget_and_a_fresh_peak() -> None:
    # Sizes with wide margins both ways: threads other tests left behind start and end, and
    # their stacks move the data segment by a few MiB at a time.
    previous = resource.getrlimit(resource.RLIMIT_DATA)
    with memory_budget(256 * MiB, device=CPU, sample_interval_s=0.001) as budget:
        left_behind = torch.ones(200 * MiB, dtype=torch.uint8)  # what an earlier stage kept
        with pytest.raises(RuntimeError, match="can't allocate memory"):
            torch.empty(200 * MiB, dtype=torch.uint8)  # 200 + 200 > 256 MiB
        first_baseline, first_peak = budget.baseline_bytes, budget.peak_bytes
        assert first_peak >= 200 * MiB
        budget.rebase()
        assert budget.baseline_bytes >= first_baseline + 150 * MiB
        assert budget.budget_bytes == 256 * MiB
        assert budget.limit_bytes == budget.baseline_bytes + 256 * MiB
        assert resource.getrlimit(resource.RLIMIT_DATA) == (budget.limit_bytes, previous[1])
        assert budget.peak_bytes < 50 * MiB  # the earlier stage's peak is forgotten
        after = torch.ones(200 * MiB, dtype=torch.uint8)  # fits now
        assert 150 * MiB <= budget.peak_bytes < 256 * MiB
        with pytest.raises(RuntimeError, match="can't allocate memory"):
            torch.empty(200 * MiB, dtype=torch.uint8)  # still a real limit
        del after, left_behind
    assert resource.getrlimit(resource.RLIMIT_DATA) == previous


@needs_glibc
def test_memory_budget_cpu_rebase_counts_the_heap_an_earlier_stage_freed_in_the_budget() -> None:
    out = _run_script(_HEAP_HOLES_SCRIPT)
    # The next stage reuses holes without growing the data segment. With them left out of its
    # budget it got 131 MiB of its 96, and a training run after the tuner read a peak of a third
    # of what a fresh process at the same batch size read. Now the holes count in the budget: at
    # least the 32 MiB it may grow by, at most the 96 MiB budget.
    assert 32 * MiB <= int(out) <= 96 * MiB


@needs_glibc
def test_memory_budget_cpu_rebase_counts_only_what_the_budget_grew_the_heap_by() -> None:
    # Counting all 64 MiB freed put the limit below the data segment in use: nothing fit.
    assert _run_script(_FREED_FROM_BEFORE_SCRIPT) == "fits"


@needs_glibc
def test_memory_budget_cpu_nested_budget_never_loosens_the_outer_limit() -> None:
    previous = resource.getrlimit(resource.RLIMIT_DATA)
    with memory_budget(256 * MiB, device=CPU) as outer:
        with memory_budget(GiB, device=CPU) as inner:
            assert inner.limit_bytes == outer.limit_bytes
            assert inner.budget_bytes < 256 * MiB
        assert resource.getrlimit(resource.RLIMIT_DATA) == (outer.limit_bytes, previous[1])
    assert resource.getrlimit(resource.RLIMIT_DATA) == previous


@needs_glibc
def test_memory_budget_cpu_without_room_raises_memory_error() -> None:
    previous = resource.getrlimit(resource.RLIMIT_DATA)
    with open("/proc/self/status") as status:
        data_bytes = next(int(x.split()[1]) * 1024 for x in status if x.startswith("VmData:"))
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (data_bytes, previous[1]))
        with pytest.raises(MemoryError), memory_budget(64 * MiB, device=CPU):
            pass
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, previous)
    assert resource.getrlimit(resource.RLIMIT_DATA) == previous
