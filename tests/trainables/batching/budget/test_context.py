"""`trainables.batching.budget.context`: the default budget and what `memory_budget` rejects."""

from __future__ import annotations

import logging

import pytest
import torch

from tests.trainables.batching.budget._budgets import CPU, GiB, needs_glibc
from trainables.batching.budget import (
    BUDGET_GRANULARITY_BYTES,
    check_cpu_budget,
    default_budget_bytes,
    memory_budget,
)
from trainables.batching.system_memory import available_memory_bytes, total_memory_bytes
from trainables.errors import UserError


@needs_glibc
def test_memory_budget_cpu_default_shares_available_memory() -> None:
    before = available_memory_bytes()
    with memory_budget(None, device=CPU, num_concurrent_trials=4) as budget:
        pass
    after = available_memory_bytes()
    # Other processes may take or free memory meanwhile: compare with both readings.
    assert (
        budget.budget_bytes % BUDGET_GRANULARITY_BYTES == 0
        or budget.budget_bytes < BUDGET_GRANULARITY_BYTES
    )
    low, high = min(before, after) // 4, max(before, after) // 4
    assert low - BUDGET_GRANULARITY_BYTES <= budget.budget_bytes <= high


def test_default_budget_bytes_rounds_down_to_the_granularity() -> None:
    before = available_memory_bytes()
    budget = default_budget_bytes(CPU, num_concurrent_trials=2)
    after = available_memory_bytes()
    assert budget % BUDGET_GRANULARITY_BYTES == 0 or budget < BUDGET_GRANULARITY_BYTES
    low, high = min(before, after) // 2, max(before, after) // 2
    assert low - BUDGET_GRANULARITY_BYTES <= budget <= high


def test_default_budget_bytes_rejects_no_trials() -> None:
    with pytest.raises(UserError, match="num_concurrent_trials must be >= 1"):
        default_budget_bytes(CPU, num_concurrent_trials=0)


@pytest.mark.parametrize("budget_bytes", [0, -1])
def test_memory_budget_rejects_a_budget_below_one_byte(budget_bytes: int) -> None:
    with (
        pytest.raises(UserError, match="memory budget must be > 0 bytes"),
        memory_budget(budget_bytes, device=CPU),
    ):
        pass


def test_memory_budget_rejects_other_devices() -> None:
    with (
        pytest.raises(UserError, match="memory budgets support devices"),
        memory_budget(GiB, device=torch.device("meta")),
    ):
        pass


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_memory_budget_rejects_cuda_without_cuda() -> None:
    with (
        pytest.raises(UserError, match=r"torch.cuda.is_available\(\) is False"),
        memory_budget(GiB, device=torch.device("cuda")),
    ):
        pass


def test_memory_budget_rejects_a_sample_interval_of_zero() -> None:
    with (
        pytest.raises(ValueError, match="sample_interval_s must be > 0"),
        memory_budget(GiB, device=CPU, sample_interval_s=0),
    ):
        pass


def test_a_cpu_budget_past_the_machines_memory_is_an_error() -> None:
    # Its limit would never bind: the kernel's OOM killer would end the trial first, and the
    # safety-factor store would record a 0% peak for it.
    total = total_memory_bytes()
    check_cpu_budget(total)  # the whole machine is allowed
    with pytest.raises(UserError, match=r"^--memory-budget .* is more than the memory this"):
        check_cpu_budget(total + 1)
    too_large = pytest.raises(
        UserError, match=r"^memory budget .* more than the memory this process can have"
    )
    with too_large, memory_budget(2 * total, device=CPU):
        pytest.fail("entered a budget larger than the machine")


def test_a_cpu_budget_that_fits_once_but_not_per_concurrent_trial_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    half = total_memory_bytes() // 2
    with caplog.at_level(logging.WARNING, logger="trainables.batching.budget.context"):
        check_cpu_budget(half, concurrent=2)
        assert caplog.records == []
        check_cpu_budget(half + GiB, concurrent=2)
    (record,) = caplog.records
    assert "x 2 concurrent trials is" in record.getMessage()
    assert "OOM killer" in record.getMessage()
