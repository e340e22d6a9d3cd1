from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch_geometric.data import Batch

from trainables.batching.budget import memory_budget
from trainables.batching.heaviest import ProbeDataModule, largest_first
from trainables.batching.oom import is_out_of_memory
from trainables.batching.safety_factor import apply_safety_factor
from trainables.batching.step_memory import StepMemory
from trainables.batching.tuner import TunerSettings, find_frontier, probe_max_batch_size
from trainables.data import CANGraphDataModule, CANGraphDataset, GraphSource
from trainables.errors import UserError
from trainables.models import GATClassifier, GATConfig
from trainables.modes import ClassifierModule

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> CANGraphDataModule:
    dm = CANGraphDataModule(
        GraphSource(num_messages=30_000, cache_dir=tmp_path_factory.mktemp("c"))
    )
    dm.setup()
    return dm


def module(vocab_size: int) -> ClassifierModule:
    return ClassifierModule(GATClassifier(GATConfig.preset("student", vocab_size=vocab_size)))


def one_step(probe: CANGraphDataset, batch_size: int, vocab_size: int) -> None:
    pl.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    ).fit(
        module(vocab_size),
        datamodule=ProbeDataModule(probe, batch_size=batch_size, for_eval=False),
    )


def test_largest_first_orders_by_nodes_plus_edges(data: CANGraphDataModule) -> None:
    assert data.train_set is not None
    probe = largest_first(data.train_set.graphs, limit=50)
    sizes = probe.graph_sizes
    assert len(probe) == 50 and (np.diff(sizes) <= 0).all()
    all_sizes = (
        data.train_set.graphs.num_nodes_per_graph + data.train_set.graphs.num_edges_per_graph
    )
    assert sizes[0] == all_sizes.max()


_FRESH = "BATCH_HPO_FRESH_INTERPRETER"
# The tests whose CPU budgets must measure a fresh process's heap (see the runner below).
_BUDGET_BOUND = (
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


class _Recording(ClassifierModule):
    """Records the size of every batch it trains or validates on."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sizes: list[int] = []

    def on_train_batch_start(self, batch: object, batch_idx: int) -> None:
        self.sizes.append(int(batch.num_graphs))  # type: ignore[attr-defined]

    def on_validation_batch_start(
        self, batch: object, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self.sizes.append(int(batch.num_graphs))  # type: ignore[attr-defined]


@pytest.mark.parametrize("for_eval", [False, True])
def test_probe_max_batch_size_tries_the_whole_set_first(
    data: CANGraphDataModule, for_eval: bool
) -> None:
    # No budget: the whole set fits, so one step at its size is all the tuner runs.
    assert data.val_set is not None and data.vocab is not None
    probe = largest_first(data.val_set.graphs.select(data.val_set.indices()))
    recording = _Recording(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
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
    recording = _Recording(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    settings = TunerSettings(init_val=4 * len(probe))
    found = probe_max_batch_size(recording, probe, for_eval=for_eval, settings=settings)
    assert found == len(probe)
    assert recording.sizes == [len(probe)]


class _NumpyHungry(ClassifierModule):
    """Allocates 1 MiB of NumPy memory per graph in every step, as Python-side work may."""

    def training_loss(self, batch: Batch) -> torch.Tensor:
        np.ones(batch.num_graphs << 17)  # past the budget, NumPy raises a MemoryError
        return super().training_loss(batch)


def test_probe_max_batch_size_backs_off_on_a_memory_error(data: CANGraphDataModule) -> None:
    # Lightning's search backs off on RuntimeErrors only: a MemoryError must not end it.
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    hungry = _NumpyHungry(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    with memory_budget(48 << 20, device=CPU):
        found = probe_max_batch_size(hungry, probe, for_eval=False, settings=TunerSettings())
    assert 16 <= found <= 48  # NumPy alone would take 49 MiB at 49 graphs


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
    made: list[_Recording] = []

    def make() -> _Recording:
        made.append(_Recording(GATClassifier(GATConfig.preset("student", vocab_size=vocab_size))))
        return made[-1]

    # One set for both searches, so that only gradients separate the two maxima.
    probe = largest_first(data.train_set.graphs.select(data.train_set.indices()))
    with memory_budget(24 << 20, device=CPU):
        frontier = find_frontier(make, probe, probe, settings=TunerSettings(aim=aim))
    assert frontier.train_max < frontier.eval_max < len(probe)  # both searches bind
    train_module, eval_module = made
    assert min(train_module.sizes) == TunerSettings().init_val
    if aim:
        # Its first step is the train maximum, a point for the memory line; the whole set,
        # which the line has too heavy, is never run.
        assert eval_module.sizes[0] == min(eval_module.sizes) == frontier.train_max
        assert len(probe) not in eval_module.sizes
    else:
        # Past the whole set in one batch (too heavy), the search starts at the train maximum.
        assert eval_module.sizes[0] == len(probe)
        assert min(eval_module.sizes[1:]) == frontier.train_max


@fresh_process_only
def test_probe_max_batch_size_budget_too_small_raises_oom(data: CANGraphDataModule) -> None:
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    # The teacher's Adam state alone (2 x 5 MiB) is allocated at the first step, inside.
    teacher = ClassifierModule(
        GATClassifier(GATConfig.preset("teacher", vocab_size=len(data.vocab)))
    )
    with memory_budget(4 << 20, device=CPU), pytest.raises(Exception) as excinfo:
        probe_max_batch_size(teacher, probe, for_eval=False, settings=TunerSettings())
    assert is_out_of_memory(excinfo.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "linear"}, "--tuner-mode must be power or binsearch"),
        ({"init_val": 0}, "tuner init_val must be >= 1"),
    ],
)
def test_tuner_settings_validate(kwargs: dict[str, object], message: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=message):
        TunerSettings(**kwargs)  # type: ignore[arg-type]
    assert TunerSettings().margin == 0.0  # never Lightning's hidden 5% second factor


def test_search_hooks_see_every_oom_and_are_scoped(data: CANGraphDataModule) -> None:
    from pytorch_lightning.tuner import batch_size_scaling

    from trainables.batching.tuner import _Bracket, _search_hooks, _Settled

    assert data.val_set is not None
    probe = ProbeDataModule(largest_first(data.val_set.graphs), batch_size=2, for_eval=True)
    original, original_run = batch_size_scaling.is_oom_error, batch_size_scaling._try_loop_run
    bad_alloc = RuntimeError("std::bad_alloc")
    assert not original(bad_alloc)  # what Lightning alone would call a hard error
    with _search_hooks(probe, _Bracket(0.0)):
        assert batch_size_scaling.is_oom_error(bad_alloc)
        assert batch_size_scaling.is_oom_error(_Settled("settled"))
        assert batch_size_scaling._try_loop_run is not original_run
    assert batch_size_scaling.is_oom_error is original
    assert batch_size_scaling._try_loop_run is original_run
    assert is_out_of_memory(bad_alloc)


def test_bracket_settles_sizes_known_to_fail_and_within_the_tolerance() -> None:
    from trainables.batching.tuner import _Bracket

    bracket = _Bracket(0.05)
    assert not bracket.settled(10**6)  # nothing known yet: every size runs
    bracket.record(300, fitted=False)
    assert bracket.settled(300) and bracket.settled(400)  # at or past a failure
    assert not bracket.settled(150)  # nothing has run: the search must go on
    bracket.record(256, fitted=True)
    assert not bracket.settled(280)  # a gap of 44 > 5% of 256
    bracket.record(270, fitted=True)
    bracket.record(280, fitted=False)
    assert bracket.settled(275)  # a gap of 10 <= 5% of 270: stop
    assert not bracket.settled(270) and not bracket.settled(200)  # what ran stays runnable


class _Ceiling(_Recording):
    """Runs out of memory on any training batch of more than 100 graphs, as a budget would."""

    ceiling = 100

    def training_loss(self, batch: Batch) -> torch.Tensor:
        if batch.num_graphs > self.ceiling:
            raise torch.OutOfMemoryError(f"{batch.num_graphs} graphs > {self.ceiling}")
        return super().training_loss(batch)


def _search(data: CANGraphDataModule, tolerance: float) -> tuple[int, list[int]]:
    """The size a binsearch with `tolerance` finds under `_Ceiling`, and the sizes it ran."""
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    assert len(probe) > _Ceiling.ceiling  # the whole set does not fit: the search runs
    ceiling = _Ceiling(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    settings = TunerSettings(tolerance=tolerance)
    found = probe_max_batch_size(ceiling, probe, for_eval=False, settings=settings)
    # Training steps that got as far as the model (a training probe validates one graph).
    return found, [size for size in ceiling.sizes if size > 1]


@pytest.mark.parametrize("tolerance", [0.05, 0.2])
def test_binsearch_stops_within_its_tolerance_on_a_size_that_ran(
    data: CANGraphDataModule, tolerance: float
) -> None:
    exact, exact_ran = _search(data, 0.0)
    assert exact == _Ceiling.ceiling  # Lightning's full bisection, to one graph
    found, ran = _search(data, tolerance)
    assert (1 - tolerance) * exact <= found <= exact
    assert found in ran  # the answer is a size that ran, never one claimed without a step
    # Once the answer and the smallest failure are within the tolerance, nothing more runs.
    smallest_failure = min(size for size in ran if size > found)
    assert smallest_failure - found <= tolerance * found
    assert len(set(ran)) < len(set(exact_ran))


def test_a_search_starting_past_the_set_bisects_down_without_rerunning_it(
    data: CANGraphDataModule,
) -> None:
    # Too heavy as a whole, the set is not run again as the search's first size: the search
    # knows it failed and bisects down from it.
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    assert len(probe) > _Ceiling.ceiling
    ceiling = _Ceiling(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    settings = TunerSettings(init_val=4 * len(probe), tolerance=0.05)
    found = probe_max_batch_size(ceiling, probe, for_eval=False, settings=settings)
    assert 0.95 * _Ceiling.ceiling <= found <= _Ceiling.ceiling
    ran = [size for size in ceiling.sizes if size > 1]
    assert ran.count(len(probe)) == 1 and max(ran) == len(probe)
    assert found in ran


class _LinearMemory(_Recording):
    """Needs `PER_WEIGHT` bytes per node and edge of a training batch (times the weight to the
    power `growth - 1`: peaks that grow faster than linear) and runs out of memory past `room`
    bytes, as a budget would; `peak` is the most any step needed since reset."""

    PER_WEIGHT = 1000

    def __init__(self, *args: object, room: int, growth: float = 1.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.room = room
        self.growth = growth
        self.peak = 0

    def need(self, weight: int) -> int:
        return int(self.PER_WEIGHT * weight**self.growth)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        need = self.need(int(batch.num_nodes + batch.num_edges))
        self.peak = max(self.peak, need)
        if need > self.room:
            raise torch.OutOfMemoryError(f"{need} bytes > {self.room}")
        return super().training_loss(batch)

    def meter(self) -> StepMemory:
        def begin() -> int:
            self.peak = 0
            return 0

        return StepMemory(room_bytes=lambda: self.room, begin=begin, peak=lambda: self.peak)


def _linear_search(
    data: CANGraphDataModule, *, aim: bool, share: float = 0.4, growth: float = 1.0
) -> tuple[int, list[int], int]:
    """The size a search finds under `_LinearMemory` with room for the `share` lightest graphs'
    worth of the heaviest, the sizes it ran, and the true maximum."""
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    weights = np.cumsum(probe.graph_sizes)
    model = GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab)))
    linear = _LinearMemory(model, room=0, growth=growth)
    linear.room = linear.need(int(weights[int(share * len(probe))]))
    true_max = sum(linear.need(int(w)) <= linear.room for w in weights)
    found = probe_max_batch_size(
        linear,
        probe,
        for_eval=False,
        settings=TunerSettings(aim=aim),
        meter=linear.meter() if aim else None,
    )
    return found, [size for size in linear.sizes if size > 1], true_max


def test_an_aimed_search_settles_next_to_the_maximum_in_fewer_steps(
    data: CANGraphDataModule,
) -> None:
    tolerance = TunerSettings().tolerance
    plain, plain_ran, true_max = _linear_search(data, aim=False)
    found, ran, _ = _linear_search(data, aim=True)
    assert (1 - tolerance) * true_max <= found <= true_max
    assert found in ran  # a size that ran, never one claimed without a step
    # Measured, the search needs no failure to settle: neither the doubling's (it stops at a
    # quarter of the predicted maximum) nor the one within the tolerance above the answer.
    assert max(ran) == found
    plain_failures = [size for size in plain_ran if size > plain]
    assert plain_failures and min(plain_failures) - plain <= tolerance * plain
    near = [size for size in ran if size > true_max // 2]
    plain_near = [size for size in plain_ran if size > true_max // 2]
    assert len(near) < len(plain_near) and len(ran) < len(plain_ran), (ran, plain_ran)
    assert (1 - tolerance) * true_max <= plain <= true_max


def test_an_aimed_search_bisects_when_its_line_runs_low(data: CANGraphDataModule) -> None:
    # Peaks that grow much faster than linear: a line through smaller sizes has sizes fitting
    # that fail. The search still settles within the tolerance, on a size that ran.
    tolerance = TunerSettings().tolerance
    found, ran, true_max = _linear_search(data, aim=True, growth=1.5)
    assert (1 - tolerance) * true_max <= found <= true_max
    assert found in ran
    assert any(size > true_max for size in ran)  # the line did run low
    _, plain_ran, _ = _linear_search(data, aim=False, growth=1.5)
    assert len(ran) < len(plain_ran), (ran, plain_ran)


def test_an_aimed_search_without_a_usable_line_is_lightnings_binsearch(
    data: CANGraphDataModule,
) -> None:
    # A meter that sees nothing (a step adds no measurable memory): no line to aim with, so
    # Lightning's binsearch goes on, to the same answer as unaimed.
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    blind = StepMemory(room_bytes=lambda: 1 << 30, begin=lambda: 0, peak=lambda: 0)
    ceiling = _Ceiling(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    found = probe_max_batch_size(
        ceiling, probe, for_eval=False, settings=TunerSettings(), meter=blind
    )
    assert 0.97 * _Ceiling.ceiling <= found <= _Ceiling.ceiling
    assert found in ceiling.sizes
