"""`trainables.batching.budget.state`: the `MemoryBudget` example runs."""

from __future__ import annotations

import doctest

from tests.trainables.batching.budget._budgets import needs_glibc
from trainables.batching.budget import state


@needs_glibc
def test_budget_docstring_examples_run() -> None:
    assert doctest.testmod(state).failed == 0
