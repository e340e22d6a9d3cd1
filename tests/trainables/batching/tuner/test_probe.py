from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from tests.trainables.batching.tuner._modules import Recording, module
from trainables.batching.budget import memory_budget
from trainables.batching.heaviest import ProbeDataModule, largest_first
from trainables.batching.oom import is_out_of_memory
from trainables.batching.safety_factor import apply_safety_factor
from trainables.batching.system_memory import fix_malloc_thresholds, process_memory_bytes
from trainables.batching.tuner import (
    TunerSettings,
    find_frontier,
    probe_max_batch_size,
    quiet_trainer,
    warm_up,
)
from trainables.data import CANGraphDataModule, CANGraphDataset, GraphSource
from trainables.models import GATClassifier, GATConfig
from trainables.modes import ClassifierModule

CPU = torch.device("cpu")


def one_step(probe: CANGraphDataset, batch_size: int, vocab_size: int) -> None:
    quiet_trainer(tempfile.gettempdir(), max_steps=1, limit_val_batches=0).fit(
        module(vocab_size),
        datamodule=ProbeDataModule(probe, batch_size=batch_size, for_eval=False),
    )


_FRESH = "BATCH_HPO_FRESH_INTERPRETER"
# The tests whose CPU budgets must measure a fresh process's heap (see the runner below).
_BUDGET_BOUND = (
    # First: it measures what a process's first steps keep.
    "test_warm_up_keeps_what_a_process_first_steps_keep_once",
    "test_probe_max_batch_size_holds_under_a_real_cpu_budget",
    "test_probe_max_batch_size_budget_too_small_raises_oom",
    "test_find_frontier_starts_the_eval_search_at_the_train_maximum",
)
fresh_process_only = pytest.mark.skipif(
    not os.environ.get(_FRESH), reason="runs in a fresh interpreter (test_budget_bound_tests...)"
)


def test_budget_bound_tests_pass_in_a_fresh_process() -> None:
    # A CPU budget counts the data segment's growth: heap that earlier tests of this pytest
    # process freed is reused without growing it, which loosens the budget by that much. Trials
    # run in fresh Ray workers; so do these checks.
    if os.environ.get(_FRESH):
        pytest.skip("already in the fresh interpreter")
    tests = [f"{__file__}::{name}" for name in _BUDGET_BOUND]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        env={**os.environ, _FRESH: "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    passed = f"^{len(_BUDGET_BOUND) + 1} passed"  # the eval-search test runs aimed and not
    assert re.search(passed, result.stdout, re.MULTILINE), result.stdout[-3000:]


@fresh_process_only
def test_warm_up_keeps_what_a_process_first_steps_keep_once(data: CANGraphDataModule) -> None:
    # A memo hit warms up before training, as the tuner's process has by then: the first steps
    # of a process keep megabytes (imports, caches) that later steps do not add to. Measured:
    # 2.4-3.7 MiB, then -0.2-0.5 MiB.
    assert data.val_set is not None and data.vocab is not None
    fix_malloc_thresholds()  # as a trial under a CPU budget has them
    probe = largest_first(data.val_set.graphs.select(data.val_set.indices()))
    vocab_size = len(data.vocab)
    kept = []
    for _ in range(3):
        gc.collect()
        before = process_memory_bytes("VmData")
        warm_up(lambda: module(vocab_size), probe, probe, settings=TunerSettings())
        gc.collect()
        kept.append(process_memory_bytes("VmData") - before)
    assert kept[0] > 1 << 20, kept
    assert max(kept[1:]) < kept[0] / 2, kept


@fresh_process_only
def test_probe_max_batch_size_holds_under_a_real_cpu_budget(data: CANGraphDataModule) -> None:
    assert data.train_set is not None and data.vocab is not None
    vocab_size = len(data.vocab)
    probe = largest_first(data.train_set.graphs.select(data.train_set.indices()))
    with memory_budget(40 << 20, device=CPU):
        found = probe_max_batch_size(
            module(vocab_size), probe, for_eval=False, settings=TunerSettings()
        )
        assert 1 <= found < len(probe)  # the budget binds
        # The heaviest batch at the default safety factor fits a fresh trainer and model...
        one_step(probe, apply_safety_factor(found, 0.9), vocab_size)
        # ...and twice the tuned maximum does not.
        with pytest.raises(Exception) as excinfo:
            one_step(probe, min(2 * found, len(probe)), vocab_size)
        assert is_out_of_memory(excinfo.value)


def test_probe_max_batch_size_is_capped_by_the_probe_set(data: CANGraphDataModule) -> None:
    assert data.val_set is not None and data.vocab is not None
    probe = largest_first(data.val_set.graphs.select(data.val_set.indices()))
    found = probe_max_batch_size(
        module(len(data.vocab)), probe, for_eval=True, settings=TunerSettings(mode="power")
    )
    assert found == len(probe)


@pytest.mark.parametrize("for_eval", [False, True])
def test_probe_max_batch_size_tries_the_whole_set_first(
    data: CANGraphDataModule, for_eval: bool
) -> None:
    # No budget: the whole set fits, so one step at its size is all the tuner runs.
    assert data.val_set is not None and data.vocab is not None
    probe = largest_first(data.val_set.graphs.select(data.val_set.indices()))
    recording = Recording(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    found = probe_max_batch_size(recording, probe, for_eval=for_eval, settings=TunerSettings())
    assert found == len(probe)
    assert set(recording.sizes) == {len(probe)}


@pytest.mark.parametrize("for_eval", [False, True])
def test_probe_max_batch_size_starting_past_the_set_runs_nothing_past_it(
    data: CANGraphDataModule, for_eval: bool
) -> None:
    # An eval search starts at the train maximum, which may be past the eval set: the whole set
    # is its first and only step when it fits, not the set and then twice the set cycled.
    assert data.val_set is not None and data.vocab is not None
    probe = largest_first(data.val_set.graphs.select(data.val_set.indices()))
    recording = Recording(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    settings = TunerSettings(init_val=4 * len(probe))
    found = probe_max_batch_size(recording, probe, for_eval=for_eval, settings=settings)
    assert found == len(probe)
    assert recording.sizes == [len(probe)]


class _NumpyHungry(ClassifierModule):
    """Allocates NumPy memory in every step, as Python-side work may (16 KiB x graphs^2: faster
    than linear, so that an aimed search's line runs low and meets a MemoryError too; a linear
    need, well measured, can settle it without one), and records the sizes where NumPy raised
    a MemoryError."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memory_errors: list[int] = []

    def training_loss(self, batch: Batch) -> torch.Tensor:
        try:
            np.ones(batch.num_graphs**2 << 11)  # past the budget, NumPy raises a MemoryError
        except MemoryError:
            self.memory_errors.append(batch.num_graphs)
            raise
        return super().training_loss(batch)


@pytest.mark.parametrize("aim", [True, False])
def test_probe_max_batch_size_backs_off_on_a_memory_error(
    data: CANGraphDataModule, aim: bool
) -> None:
    # Lightning's search backs off on RuntimeErrors only: a MemoryError must not end it.
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    hungry = _NumpyHungry(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    with memory_budget(48 << 20, device=CPU):
        found = probe_max_batch_size(
            hungry, probe, for_eval=False, settings=TunerSettings(aim=aim)
        )
    # The search met MemoryErrors (the budget binds: NumPy alone takes 48 MiB at 56 graphs, and
    # heap this process freed earlier may add a few) and went on below them.
    assert hungry.memory_errors, "no step ran out of memory: the budget did not bind"
    assert 16 <= found < min(hungry.memory_errors)


@fresh_process_only
@pytest.mark.parametrize("aim", [True, False])
def test_find_frontier_starts_the_eval_search_at_the_train_maximum(
    tmp_path_factory: pytest.TempPathFactory, aim: bool
) -> None:
    # The synthetic default: enough graphs that the budget binds for evaluation too.
    data = CANGraphDataModule(GraphSource(cache_dir=tmp_path_factory.mktemp("c")))
    data.setup()
    assert data.train_set is not None and data.vocab is not None
    vocab_size = len(data.vocab)
    made: list[Recording] = []

    def make() -> Recording:
        made.append(Recording(GATClassifier(GATConfig.preset("student", vocab_size=vocab_size))))
        return made[-1]

    # One set for both searches, so that only gradients separate the two maxima.
    probe = largest_first(data.train_set.graphs.select(data.train_set.indices()))
    with memory_budget(24 << 20, device=CPU):
        frontier = find_frontier(make, probe, probe, settings=TunerSettings(aim=aim))
    assert frontier.train_max < frontier.eval_max < len(probe)  # both searches bind
    train_module, eval_module = made
    assert min(train_module.sizes) == TunerSettings().init_val
    if aim:
        # Its first step is the train maximum, a point for the memory line. (Whether the line
        # spares the whole set a step is not asserted: at this budget a step's small tensors
        # reuse heap pages still resident, its measured peak runs low, and about 1 run in 5 the
        # line had the whole set fitting. The answer is a size that ran either way.)
        assert eval_module.sizes[0] == min(eval_module.sizes) == frontier.train_max
    else:
        # Past the whole set in one batch (too heavy), the search starts at the train maximum.
        assert eval_module.sizes[0] == len(probe)
        assert min(eval_module.sizes[1:]) == frontier.train_max


@fresh_process_only
def test_probe_max_batch_size_budget_too_small_raises_oom(data: CANGraphDataModule) -> None:
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    # The teacher's Adam state alone (2 x 5 MiB) is allocated at the first step, inside.
    teacher = module(len(data.vocab), "teacher")
    with memory_budget(4 << 20, device=CPU), pytest.raises(Exception) as excinfo:
        probe_max_batch_size(teacher, probe, for_eval=False, settings=TunerSettings())
    assert is_out_of_memory(excinfo.value)
