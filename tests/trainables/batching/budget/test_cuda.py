"""`trainables.batching.budget.cuda`: a real per-process memory fraction on a CUDA device."""

from __future__ import annotations

import pytest
import torch

from tests.trainables.batching.budget._budgets import GiB, MiB
from trainables.batching.budget import memory_budget
from trainables.batching.oom import is_out_of_memory


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_memory_budget_cuda_limits_allocations_and_restores_the_fraction() -> None:
    device = torch.device("cuda", torch.cuda.current_device())
    before = torch.cuda.get_per_process_memory_fraction(device)
    with memory_budget(GiB, device=device) as budget:
        assert torch.cuda.get_per_process_memory_fraction(device) < before
        block = torch.empty(256 * MiB, dtype=torch.uint8, device=device)
        with pytest.raises(torch.OutOfMemoryError, match="out of memory") as info:
            torch.empty(2 * GiB, dtype=torch.uint8, device=device)
        assert is_out_of_memory(info.value)
        del block
    assert 256 * MiB <= budget.peak_bytes < GiB
    assert 0.25 <= budget.peak_fraction < 1.0
    assert torch.cuda.get_per_process_memory_fraction(device) == before
    assert torch.empty(2 * GiB, dtype=torch.uint8, device=device).numel() == 2 * GiB
