from __future__ import annotations

import doctest
import json
import multiprocessing
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainables.batching import adaptive_factor
from trainables.batching.adaptive_factor import (
    AdaptationPolicy,
    SafetyFactorKey,
    SafetyFactorStore,
)
from trainables.errors import UserError

KEY = SafetyFactorKey("hcrl", "normal", "small", "cpu", 4 * 2**30)
OTHER_KEY = SafetyFactorKey("hcrl", "normal", "large", "cpu", 4 * 2**30)


def test_safety_factor_store_recommends_the_default_for_a_new_key(tmp_path: Path) -> None:
    store = SafetyFactorStore(tmp_path / "factors.json")
    assert store.recommend(KEY, default=0.7) == 0.7
    assert store.num_records(KEY) == 0


def test_safety_factor_store_lowers_the_factor_after_out_of_memory(tmp_path: Path) -> None:
    store = SafetyFactorStore(tmp_path / "factors.json")
    after_one = store.record(KEY, factor=0.9, peak_fraction=None, oom=True)
    assert after_one <= 0.9 * 0.8
    after_two = store.record(KEY, factor=after_one, peak_fraction=1.0, oom=True)
    assert after_two < after_one
    for _ in range(20):
        lowest = store.record(KEY, factor=0.3, peak_fraction=None, oom=True)
    assert lowest == 0.3
    assert store.num_records(KEY) == 22


def test_safety_factor_store_raises_the_factor_after_runs_far_below_target(tmp_path: Path) -> None:
    store = SafetyFactorStore(tmp_path / "factors.json")
    first = store.record(KEY, factor=0.5, peak_fraction=0.3, oom=False)
    assert first > 0.5
    for _ in range(10):
        highest = store.record(KEY, factor=0.5, peak_fraction=0.3, oom=False)
    assert highest == 1.0


def test_a_small_factor_far_below_target_never_lowers_the_recommendation(
    tmp_path: Path,
) -> None:
    # Measured: factor 0.05 peaked at 7% of the budget (the model and data weigh in too), which
    # proposed 0.05 x 0.9 / 0.07 = 0.64 and pulled a recommendation of 0.9 down to 0.64.
    store = SafetyFactorStore(tmp_path / "factors.json")
    assert store.record(KEY, factor=0.9, peak_fraction=0.83, oom=False) == 0.9
    for _ in range(3):
        assert store.record(KEY, factor=0.05, peak_fraction=0.07, oom=False) >= 0.9


def test_a_peak_above_target_never_raises_the_recommendation(tmp_path: Path) -> None:
    store = SafetyFactorStore(tmp_path / "factors.json")
    assert store.record(KEY, factor=0.5, peak_fraction=0.85, oom=False) == 0.5
    # Factor 1.0 at a 95% peak proposes 0.95: above the target, so no reason to raise.
    assert store.record(KEY, factor=1.0, peak_fraction=0.95, oom=False) <= 0.5
    # Nor an out-of-memory error at a factor whose back-off is above the recommendation.
    assert store.record(KEY, factor=1.0, peak_fraction=None, oom=True) <= 0.5


def test_safety_factor_store_keeps_the_factor_near_the_target(tmp_path: Path) -> None:
    store = SafetyFactorStore(tmp_path / "factors.json")
    assert store.record(KEY, factor=0.7, peak_fraction=0.85, oom=False) == 0.7
    assert store.record(KEY, factor=0.7, peak_fraction=0.9, oom=False) == 0.7


def test_safety_factor_store_lowers_the_factor_a_little_above_target(tmp_path: Path) -> None:
    store = SafetyFactorStore(tmp_path / "factors.json")
    recommended = store.record(KEY, factor=0.8, peak_fraction=0.98, oom=False)
    assert 0.8 * 0.9 / 0.98 < recommended < 0.8


def test_safety_factor_store_momentum_carries_repeated_moves_further(tmp_path: Path) -> None:
    with_momentum = SafetyFactorStore(tmp_path / "a.json")
    without = SafetyFactorStore(tmp_path / "b.json", policy=AdaptationPolicy(momentum=0.0))
    for store in (with_momentum, without):
        store.record(KEY, factor=0.4, peak_fraction=0.45, oom=False)
        store.record(KEY, factor=0.4, peak_fraction=0.45, oom=False)
    assert with_momentum.recommend(KEY, default=0) > without.recommend(KEY, default=0)


def test_safety_factor_store_keeps_keys_apart_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "factors.json"
    SafetyFactorStore(path).record(KEY, factor=0.8, peak_fraction=None, oom=True)
    reopened = SafetyFactorStore(path)
    assert reopened.recommend(KEY, default=0.8) < 0.8
    assert reopened.recommend(OTHER_KEY, default=0.8) == 0.8
    entry = json.loads(path.read_text())["entries"][json.dumps(KEY.__dict__, sort_keys=True)]
    assert entry["last"] == {"factor": 0.8, "peak_fraction": None, "oom": True}


@pytest.mark.parametrize("factor", [0.0, 1.5])
def test_safety_factor_store_record_rejects_factors_outside_zero_to_one(
    tmp_path: Path, factor: float
) -> None:
    with pytest.raises(UserError, match=r"safety factor must be in \(0, 1\]"):
        SafetyFactorStore(tmp_path / "f.json").record(
            KEY, factor=factor, peak_fraction=0.5, oom=False
        )


@pytest.mark.parametrize(
    ("peak_fraction", "match"),
    [
        (None, "peak_fraction is needed for a run that did not run out of memory"),
        (-0.1, "peak_fraction must be a finite number >= 0"),
        (float("nan"), "peak_fraction must be a finite number >= 0"),
    ],
)
def test_safety_factor_store_record_rejects_bad_peak_fractions(
    tmp_path: Path, peak_fraction: float | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        SafetyFactorStore(tmp_path / "f.json").record(
            KEY, factor=0.5, peak_fraction=peak_fraction, oom=False
        )


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"target_peak_fraction": 1.2}, r"target_peak_fraction must be in \(0, 1\]"),
        ({"tolerance": 0.95}, r"tolerance must be in \[0, target_peak_fraction\)"),
        ({"oom_backoff": 1.0}, r"oom_backoff must be in \(0, 1\)"),
        ({"step_size": 0.0}, r"step_size must be in \(0, 1\]"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"min_factor": 0.0}, r"min_factor must be in \(0, max_factor\]"),
        ({"max_factor": 1.5}, r"max_factor must be in \[min_factor, 1\]"),
    ],
)
def test_adaptation_policy_rejects_values_out_of_range(
    fields: dict[str, float], match: str
) -> None:
    with pytest.raises(UserError, match=match):
        AdaptationPolicy(**fields)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"dataset": ""}, "SafetyFactorKey.dataset must not be empty"),
        ({"budget_bytes": -1}, r"SafetyFactorKey.budget_bytes must be >= 0 \(0: the default"),
    ],
)
def test_safety_factor_key_rejects_empty_fields(fields: dict[str, object], match: str) -> None:
    values: dict[str, object] = {
        "dataset": "hcrl",
        "mode": "normal",
        "model_size": "small",
        "device_type": "cpu",
        "budget_bytes": 1,
    }
    values.update(fields)
    with pytest.raises(ValueError, match=match):
        SafetyFactorKey(**values)  # type: ignore[arg-type]


_outcomes = st.lists(
    st.tuples(
        st.floats(min_value=0.01, max_value=1.0),
        st.none() | st.floats(min_value=0.0, max_value=3.0),
        st.booleans(),
    ),
    min_size=1,
    max_size=30,
)


@given(outcomes=_outcomes)
def test_adaptation_policy_keeps_recommendations_within_bounds(
    outcomes: list[tuple[float, float | None, bool]],
) -> None:
    policy = AdaptationPolicy()
    current, velocity = outcomes[0][0], 0.0
    for factor, peak_fraction, oom in outcomes:
        previous = current
        current, velocity = policy.next_state(
            current,
            velocity,
            factor=factor,
            peak_fraction=peak_fraction,
            oom=oom or peak_fraction is None,
        )
        assert policy.min_factor <= current <= policy.max_factor
        if oom or peak_fraction is None:
            assert current <= max(previous, policy.min_factor)


def _record_many(path: Path, worker: int, num_records: int, start: Event) -> None:
    store = SafetyFactorStore(path)
    start.wait()
    for i in range(num_records):
        oom = (worker + i) % 5 == 0
        store.record(KEY, factor=0.8, peak_fraction=None if oom else 0.6, oom=oom)


def test_safety_factor_store_loses_no_record_under_concurrent_processes(tmp_path: Path) -> None:
    path = tmp_path / "factors.json"
    context = multiprocessing.get_context("fork")
    start = context.Event()
    workers = [
        context.Process(target=_record_many, args=(path, worker, 50, start)) for worker in range(2)
    ]
    for worker in workers:
        worker.start()
    start.set()
    num_reads = 0
    while any(worker.is_alive() for worker in workers):
        if path.exists():
            json.loads(path.read_text())  # always a complete file, never a half-written one
            num_reads += 1
        time.sleep(0.001)
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    assert num_reads > 0
    store = SafetyFactorStore(path)
    assert store.num_records(KEY) == 100
    entry = json.loads(path.read_text())["entries"][json.dumps(KEY.__dict__, sort_keys=True)]
    assert entry["num_ooms"] == 20
    assert 0.3 <= store.recommend(KEY, default=0.0) <= 1.0


def test_adaptive_factor_docstring_examples_run() -> None:
    assert doctest.testmod(adaptive_factor).failed == 0


def test_default_budget_key_is_its_own_entry(tmp_path: Path) -> None:
    # A run without --memory-budget records under budget 0 and `auto` finds that record again,
    # apart from any explicit budget.
    store = SafetyFactorStore(tmp_path / "factors.json")
    default = SafetyFactorKey("hcrl", "normal", "student", "cpu", 0)
    explicit = SafetyFactorKey("hcrl", "normal", "student", "cpu", 2**30)
    store.record(default, factor=0.5, peak_fraction=None, oom=True)
    assert store.num_records(default) == 1
    assert store.num_records(explicit) == 0
    assert store.recommend(default, default=0.9) < 0.5


@pytest.mark.parametrize(
    "entry",
    [
        {"recommended": "x", "velocity": 0.0, "num_records": 1, "num_ooms": 0},
        {"recommended": 0.8, "velocity": None, "num_records": 1, "num_ooms": 0},
        {"recommended": 0.8, "velocity": 0.0, "num_records": -1, "num_ooms": 0},
        {"recommended": 0.8, "velocity": 0.0},
        {"recommended": -3, "velocity": 0.0, "num_records": 1, "num_ooms": 0},
        {"recommended": 7.0, "velocity": 0.0, "num_records": 1, "num_ooms": 0},
        [0.8],
    ],
)
def test_safety_factor_store_names_a_damaged_entry_and_leaves_the_file(
    tmp_path: Path, entry: object
) -> None:
    store = SafetyFactorStore(tmp_path / "factors.json")
    store.record(KEY, factor=0.8, peak_fraction=0.5, oom=False)
    data = json.loads(store.path.read_text())
    data["entries"]["damaged"] = entry
    store.path.write_text(json.dumps(data))
    before = store.path.read_bytes()
    for use in (
        store.entries,
        lambda: store.recommend(OTHER_KEY, default=0.9),
        lambda: store.record(OTHER_KEY, factor=0.8, peak_fraction=0.5, oom=False),
    ):
        with pytest.raises(UserError, match=r"factors.json: damaged entry damaged; move"):
            use()
    assert store.path.read_bytes() == before
