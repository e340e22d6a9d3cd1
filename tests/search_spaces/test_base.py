from __future__ import annotations

import doctest
from typing import Any

import optuna
import pytest

from search_spaces import FloatRange, IntRange, SearchSpace, base, get_space
from trainables.errors import UserError


def _warm(space_name: str = "normal", **changes: Any) -> dict[str, Any]:
    return {**get_space(space_name).warm_start_params(0.8), **changes}


def test_base_examples_run() -> None:
    assert doctest.testmod(base, raise_on_error=True).attempted > 0


def test_search_space_suggest_returns_only_the_fixed_parameters() -> None:
    space = get_space("kd")
    trial = optuna.create_study().ask()
    assert space.suggest(trial) == {
        "mode": "kd",
        "size": "student",
        "epochs": 5,
        "dataset": "synthetic",
        "window": 100,
    }
    assert "batch_size" in trial.params


def test_search_space_caps_epoch_counting_ranges_at_epochs() -> None:
    space = get_space("curriculum").with_overrides(epochs=3)
    assert space.schedule_ranges("step")["schedule_step_size"] == IntRange(1, 3)
    assert space.schedule_ranges("cosine")["schedule_num_epochs"] == IntRange(1, 3)
    assert space.schedule_ranges("none") == {}


def test_search_space_with_overrides_returns_a_new_validated_space() -> None:
    space = get_space("curriculum")
    longer = space.with_overrides(epochs=40, batch_size=IntRange(16, 1024, log=True))
    assert (longer.epochs, longer.batch_size.high) == (40, 1024)
    assert space.epochs == 5  # the registered space is unchanged


def test_search_space_with_overrides_rejects_unknown_field() -> None:
    with pytest.raises(UserError, match=r"'curriculum': no field epoch; the fields are name, m"):
        get_space("curriculum").with_overrides(epoch=3)


def test_search_space_warm_start_prefers_a_constant_schedule() -> None:
    assert _warm()["schedule_type"] == "none"
    space = get_space("normal").with_overrides(schedule_type=("step", "cosine"))
    params = space.warm_start_params(0.5)
    assert params["schedule_type"] == "step"
    assert params["schedule_gamma"] == 3
    assert params["schedule_step_size"] == 3  # middle of 1..10 capped at the 5 epochs
    assert params["schedule_max_batch_size"] == 724  # geometric middle of 64..8192


@pytest.mark.parametrize("factor", [0.2, 1.5, 0.0])
def test_search_space_warm_start_rejects_factor_outside_the_range(factor: float) -> None:
    with pytest.raises(UserError, match=r"'normal': warm-start safety factor must be within"):
        get_space("normal").warm_start_params(factor)


def test_search_space_warm_start_accepts_a_factor_after_widening() -> None:
    space = get_space("normal").with_overrides(safety_factor=FloatRange(0.1, 1.0))
    assert space.warm_start_params(0.2)["safety_factor"] == 0.2


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"batch_size": None}, r"'normal': trial parameters: batch_size must be an integer"),
        ({"epochs": 3}, r"'normal': trial parameters: epochs is fixed to 5 in this space"),
        ({"mode": "fusion"}, r"'normal': trial parameters: mode is fixed to 'normal'"),
        ({"batch_size": 9000}, r"'normal': trial parameters: batch_size=9000 is outside its r"),
        ({"safety_factor": 0.25}, r"safety_factor=0.25 is outside its range"),
        ({"eval_multiplier": 5}, r"eval_multiplier=5 is outside its range"),
        ({"schedule_gamma": 2}, r"field gamma: Extra inputs are not permitted"),
        ({"extra": 1}, r"trial parameters: unknown extra; a trial's parameters are exactly"),
    ],
)
def test_search_space_trial_settings_rejects_bad_params(
    params: dict[str, Any], match: str
) -> None:
    with pytest.raises(UserError, match=match):
        get_space("normal").trial_settings(_warm(**params))


def test_search_space_trial_settings_rejects_a_missing_key() -> None:
    params = _warm()
    del params["learning_rate"]
    with pytest.raises(UserError, match=r"trial parameters: missing learning_rate"):
        get_space("normal").trial_settings(params)


def test_search_space_trial_settings_rejects_a_type_not_searched() -> None:
    space = get_space("normal").with_overrides(schedule_type=("none",))
    params = {**space.warm_start_params(0.8), "schedule_type": "step", "schedule_step_size": 2}
    params["schedule_gamma"] = 2
    with pytest.raises(UserError, match=r"schedule_type 'step' is not searched here"):
        space.trial_settings(params)


def test_search_space_trial_settings_rejects_step_params_out_of_range_or_missing() -> None:
    space = get_space("normal").with_overrides(schedule_type=("step",))
    params = space.warm_start_params(0.8)
    with pytest.raises(UserError, match=r"schedule_step_size=11 is outside its range"):
        space.trial_settings({**params, "schedule_step_size": 11})
    del params["schedule_max_batch_size"]
    with pytest.raises(UserError, match=r"missing schedule_max_batch_size \(searched with 'step'"):
        space.trial_settings(params)


def test_search_space_trial_settings_rejects_a_cap_the_space_does_not_search() -> None:
    space = get_space("normal").with_overrides(
        schedule_type=("step",), schedule_max_batch_size=None
    )
    params = {**space.warm_start_params(0.8), "schedule_max_batch_size": 256}
    with pytest.raises(UserError, match=r"schedule_max_batch_size not searched with schedule_"):
        space.trial_settings(params)


def test_search_space_is_a_registered_space_subclass_free_instance() -> None:
    assert all(type(get_space(name)) is SearchSpace for name in ("normal", "kd"))
