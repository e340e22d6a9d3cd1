from __future__ import annotations

import doctest

import optuna
import pytest

from search_spaces import FloatRange, IntRange, ranges
from trainables.errors import UserError


def test_ranges_examples_run() -> None:
    assert doctest.testmod(ranges, raise_on_error=True).attempted > 0


def test_int_range_middle_is_geometric_on_a_log_scale() -> None:
    assert IntRange(8, 8192, log=True).middle == 256
    assert IntRange(1, 4).middle == 2
    assert IntRange(7, 7, log=True).middle == 7


def test_float_range_middle_is_geometric_on_a_log_scale_and_round() -> None:
    assert FloatRange(1e-4, 1e-2, log=True).middle == 0.001
    assert FloatRange(0.3, 1.0).middle == 0.65


def test_int_range_contains_only_integers_in_range() -> None:
    bounds = IntRange(1, 4)
    assert bounds.contains(1) and bounds.contains(4)
    assert not bounds.contains(0) and not bounds.contains(5)
    assert not bounds.contains(2.0) and not bounds.contains(True)


def test_float_range_contains_numbers_in_range_but_not_bools() -> None:
    bounds = FloatRange(0.0, 1.0)
    assert bounds.contains(1) and bounds.contains(0.5)
    assert not bounds.contains(True) and not bounds.contains(1.01) and not bounds.contains("0.5")


def test_int_range_capped_lowers_only_high() -> None:
    assert IntRange(1, 10).capped(4) == IntRange(1, 4)
    assert IntRange(1, 3, log=True).capped(4) == IntRange(1, 3, log=True)


def test_ranges_suggest_within_bounds() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        assert IntRange(8, 64, log=True).contains(IntRange(8, 64, log=True).suggest(trial, "a"))
        assert FloatRange(1e-4, 1e-2, log=True).suggest(trial, "b") <= 1e-2


@pytest.mark.parametrize(
    ("bounds", "match"),
    [
        (IntRange(5, 1), r"where: the range is empty \(low > high\)"),
        (IntRange(0, 4, log=True), r"where: a log-scaled range needs low >= 1"),
        (IntRange(1, True), r"where: low and high must be integers"),
        (IntRange(1, 4, log=1), r"where: low and high must be integers and log a bool"),  # type: ignore[arg-type]
    ],
)
def test_int_range_check_rejects_bad_bounds(bounds: IntRange, match: str) -> None:
    with pytest.raises(UserError, match=match):
        bounds.check("where")


@pytest.mark.parametrize(
    ("bounds", "match"),
    [
        (FloatRange(1.0, 0.5), r"where: the range is empty \(low > high\)"),
        (FloatRange(-1.0, 0.5, log=True), r"where: a log-scaled range needs low > 0"),
        (FloatRange(float("-inf"), 0.5), r"where: low and high must be finite"),
        (FloatRange("0.1", 0.5), r"where: low and high must be numbers"),  # type: ignore[arg-type]
    ],
)
def test_float_range_check_rejects_bad_bounds(bounds: FloatRange, match: str) -> None:
    with pytest.raises(UserError, match=match):
        bounds.check("where")


def test_ranges_check_applies_the_callers_bounds() -> None:
    with pytest.raises(UserError, match=r"f: low must be >= 2, got IntRange"):
        IntRange(1, 4).check("f", minimum=2)
    with pytest.raises(UserError, match=r"f: high must be <= 1.0"):
        FloatRange(0.5, 2.0).check("f", maximum=1.0)
    FloatRange(0.5, 1.0).check("f", above=0.0, maximum=1.0)
