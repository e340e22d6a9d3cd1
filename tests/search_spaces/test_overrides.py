from __future__ import annotations

import doctest

import optuna
import pytest

from search_spaces import FloatRange, IntRange, get_space, overrides
from search_spaces.overrides import apply_overrides
from trainables.errors import UserError


def test_the_examples_in_the_docstrings_hold() -> None:
    assert doctest.testmod(overrides, raise_on_error=True).attempted > 0


def test_set_changes_ranges_scales_types_and_size() -> None:
    space = apply_overrides(
        get_space("curriculum"),
        [
            "batch_size=16..1024",  # keeps the space's log scale
            "eval_multiplier=2",  # one value
            "learning_rate=1e-4..1e-3:linear",
            "safety_factor = 0.5..0.9",
            "schedule_type=none,step",
            "schedule_max_batch_size=none",
            "size=student",
        ],
    )
    assert space.batch_size == IntRange(16, 1024, log=True)
    assert space.eval_multiplier == IntRange(2, 2)
    assert space.learning_rate == FloatRange(1e-4, 1e-3, log=False)
    assert space.safety_factor == FloatRange(0.5, 0.9)
    assert space.schedule_type == ("none", "step")
    assert space.schedule_max_batch_size is None
    assert space.size == "student"
    assert (space.name, space.mode, space.epochs) == ("curriculum", "curriculum", 5)
    # What a trial samples (Optuna's own distributions) stays inside the new ranges.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        params = space.sample(trial)
        assert 16 <= params["batch_size"] <= 1024 and params["eval_multiplier"] == 2
        assert 0.5 <= params["safety_factor"] <= 0.9
        assert params["schedule_type"] in ("none", "step")
        assert "schedule_max_batch_size" not in params and params["size"] == "student"
        study.tell(trial, 0.0)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["batch_size"], "--set batch_size: expected KEY=VALUE"),
        (["batch_size=a..b"], "--set batch_size=a..b: expected LOW..HIGH (or one value) of"),
        (["learning_rate=x"], "--set learning_rate=x: expected LOW..HIGH (or one value) of"),
        (["batch_size=8..64:cubic"], "the scale after ':' must be log or linear, got 'cubic'"),
        (["epochs=3"], "--set epochs=3: epochs has an option of its own: --epochs"),
        (["mode=kd"], "--set mode=kd: 'mode' is not a setting --set changes; choose from"),
        (["batch_size=0..8"], "--set batch_size=0..8: search space 'curriculum': field"),
        (["safety_factor=0.5..1.5"], "field safety_factor: high must be <= 1.0"),
        (["batch_size=64..8"], "field batch_size: the range is empty (low > high)"),
        (["schedule_type=none,piecewise"], "unknown schedule type 'piecewise'"),
        (["schedule_step_size=7..9"], "field schedule_step_size: low must be <= epochs (5)"),
        (["size=huge"], "--set size=huge: search space 'curriculum': field size must be one"),
        (["batch_size=8..16", "batch_size=8..32"], "--set batch_size=8..32: batch_size is"),
        # Two items, one wrong: the message names the one that set the field.
        (["size=student", "eval_multiplier=0"], "--set eval_multiplier=0: search space"),
    ],
)
def test_a_bad_set_names_the_item_and_what_is_wrong(items: list[str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        apply_overrides(get_space("curriculum"), items)
    assert message in str(caught.value)
    if len(items) == 2 and "size=student" in items:
        assert "--set size=student" not in str(caught.value)


def test_kd_keeps_its_student() -> None:
    with pytest.raises(UserError, match="mode kd trains a student"):
        apply_overrides(get_space("kd"), ["size=teacher"])
