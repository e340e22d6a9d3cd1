from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainables.batching.safety_factor import apply_safety_factor, resolve_eval_batch_size
from trainables.errors import UserError


@pytest.mark.parametrize(
    ("tuned_max", "factor", "expected"),
    [(512, 0.8, 409), (100, 0.29, 29), (100, 1.0, 100), (1, 0.5, 1), (3, 0.3, 1), (10, 0.35, 3)],
)
def test_apply_safety_factor_floors_the_scaled_maximum(
    tuned_max: int, factor: float, expected: int
) -> None:
    assert apply_safety_factor(tuned_max, factor) == expected


@pytest.mark.parametrize("factor", [0.0, -0.1, 1.01, float("nan")])
def test_apply_safety_factor_rejects_factors_outside_zero_to_one(factor: float) -> None:
    with pytest.raises(UserError, match=r"safety factor must be in \(0, 1\]"):
        apply_safety_factor(100, factor)


def test_apply_safety_factor_rejects_a_tuned_maximum_below_one() -> None:
    with pytest.raises(UserError, match="tuned maximum batch size must be >= 1"):
        apply_safety_factor(0, 0.5)


@given(
    tuned_max=st.integers(min_value=1, max_value=10**7),
    factor=st.floats(min_value=0.0, max_value=1.0, exclude_min=True),
)
def test_apply_safety_factor_stays_between_one_and_the_tuned_maximum(
    tuned_max: int, factor: float
) -> None:
    applied = apply_safety_factor(tuned_max, factor)
    assert 1 <= applied <= tuned_max
    assert applied <= tuned_max * factor + 1e-6 * tuned_max or applied == 1


def test_resolve_eval_batch_size_prefers_the_explicit_size() -> None:
    size = resolve_eval_batch_size(applied_train=64, eval_multiplier=4.0, eval_max=100, explicit=7)
    assert size == 7


@pytest.mark.parametrize(
    ("applied_train", "eval_multiplier", "eval_max", "expected"),
    [(64, 2.0, None, 128), (64, 4.0, 200, 200), (64, 0.5, 1000, 32), (1, 0.5, None, 1)],
)
def test_resolve_eval_batch_size_scales_the_train_size_up_to_the_maximum(
    applied_train: int, eval_multiplier: float, eval_max: int | None, expected: int
) -> None:
    size = resolve_eval_batch_size(
        applied_train=applied_train,
        eval_multiplier=eval_multiplier,
        eval_max=eval_max,
        explicit=None,
    )
    assert size == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"explicit": 0}, "eval batch size must be >= 1"),
        ({"applied_train": 0}, "train batch size must be >= 1"),
        ({"eval_multiplier": 0.0}, "eval batch-size multiplier must be a finite number > 0"),
        ({"eval_multiplier": float("inf")}, "eval batch-size multiplier must be a finite"),
        ({"eval_max": 0}, "eval maximum batch size must be >= 1"),
    ],
)
def test_resolve_eval_batch_size_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {
        "applied_train": 64,
        "eval_multiplier": 2.0,
        "eval_max": None,
        "explicit": None,
    }
    arguments.update(kwargs)
    with pytest.raises(UserError, match=match):
        resolve_eval_batch_size(**arguments)  # type: ignore[arg-type]


@given(
    applied_train=st.integers(min_value=1, max_value=10**6),
    eval_multiplier=st.floats(min_value=0.01, max_value=64.0),
    eval_max=st.none() | st.integers(min_value=1, max_value=10**7),
)
def test_resolve_eval_batch_size_stays_between_one_and_the_maximum(
    applied_train: int, eval_multiplier: float, eval_max: int | None
) -> None:
    size = resolve_eval_batch_size(
        applied_train=applied_train,
        eval_multiplier=eval_multiplier,
        eval_max=eval_max,
        explicit=None,
    )
    assert size >= 1
    if eval_max is not None:
        assert size <= eval_max
