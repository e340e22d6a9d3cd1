from __future__ import annotations

import doctest
from typing import Any

import pytest

from search_spaces import TrialSettings, settings
from trainables.batching.schedules import (
    ConstantSchedule,
    CosineSchedule,
    PiecewiseSchedule,
    StepSchedule,
)
from trainables.errors import UserError

PARAMS: dict[str, Any] = {
    "mode": "normal",
    "size": "teacher",
    "epochs": 4,
    "dataset": "synthetic",
    "window": 100,
    "batch_size": 128,
    "eval_multiplier": 2,
    "safety_factor": 0.8,
    "learning_rate": 1e-3,
    "schedule_type": "step",
    "schedule_step_size": 2,
    "schedule_gamma": 2,
}


def _settings(**changes: Any) -> TrialSettings:
    fields: dict[str, Any] = {
        "mode": "normal",
        "size": "teacher",
        "epochs": 4,
        "learning_rate": 1e-3,
        "batch_size": 128,
        "eval_multiplier": 2,
        "safety_factor": 0.8,
    }
    return TrialSettings(**{**fields, **changes})


def test_settings_examples_run() -> None:
    assert doctest.testmod(settings, raise_on_error=True).attempted > 0


def test_trial_settings_from_params_builds_the_schedule() -> None:
    result = TrialSettings.from_params(PARAMS)
    assert result.schedule == StepSchedule(step_size=2, gamma=2)
    assert result.to_params() == PARAMS


@pytest.mark.parametrize(
    "schedule",
    [
        ConstantSchedule(),
        StepSchedule(step_size=3, gamma=4, max_batch_size=512),
        CosineSchedule(final_batch_size=256, num_epochs=3, lr_scaling="sqrt"),
        PiecewiseSchedule(milestones=((1, 64), (3, 256))),
        StepSchedule(step_size=1, gamma=2, cap_at_tuned_max=False),
    ],
)
def test_trial_settings_round_trip_every_schedule(schedule: Any) -> None:
    original = _settings(schedule=schedule)
    params = original.to_params()
    assert TrialSettings.from_params(params) == original
    assert TrialSettings.from_params(params).to_params() == params


def test_trial_settings_to_params_leaves_out_schedule_defaults() -> None:
    params = _settings(schedule=StepSchedule(step_size=1, gamma=2)).to_params()
    assert sorted(key for key in params if key.startswith("schedule_")) == [
        "schedule_gamma",
        "schedule_step_size",
        "schedule_type",
    ]


def test_trial_settings_from_params_accepts_integer_floats() -> None:
    result = TrialSettings.from_params({**PARAMS, "safety_factor": 1, "learning_rate": 1})
    assert isinstance(result.safety_factor, float) and isinstance(result.learning_rate, float)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"mode": "gan"}, r"mode must be one of normal, autoencoder"),
        ({"size": "tiny"}, r"size must be one of teacher, student"),
        ({"mode": "kd"}, r"size must be 'student' with mode 'kd'"),
        ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
        ({"batch_size": True}, r"batch_size must be an integer >= 1, got True"),
        ({"batch_size": 64.0}, r"batch_size must be an integer >= 1, got 64.0"),
        ({"eval_multiplier": 0}, r"eval_multiplier must be an integer >= 1"),
        ({"window": 1}, r"window must be an integer >= 2"),
        ({"dataset": ""}, r"dataset must be a non-empty dataset name"),
        ({"learning_rate": 0.0}, r"learning_rate must be a finite number > 0"),
        ({"learning_rate": float("inf")}, r"learning_rate must be a finite number > 0"),
        ({"safety_factor": 0.0}, r"safety_factor must be a number in \(0, 1\]"),
        ({"safety_factor": 1.2}, r"safety_factor must be a number in \(0, 1\]"),
        ({"schedule": {"type": "none"}}, r"schedule must be a schedule; build one with"),
        # Set by hand (a point to evaluate), past the last epoch (epochs 4: 0 to 3).
        (
            {"schedule": PiecewiseSchedule(milestones=((1, 64), (4, 128)))},
            r"schedule: milestone 1 \[4, 128\] is never reached: epochs 4 trains epochs 0 to 3",
        ),
    ],
)
def test_trial_settings_rejects_bad_values(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(UserError, match=match):
        _settings(**changes)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({**PARAMS, "schedule_type": "zigzag"}, r"trial parameters: schedule_\*: .*type must be"),
        (
            {**PARAMS, "schedule_gamma": 1},
            r"schedule_\*: .*field gamma: .*greater than or equal to 2",
        ),
        ({**PARAMS, "batch_size": 0}, r"trial parameters: batch_size must be an integer >= 1"),
        ({**PARAMS, "seed": 1}, r"trial parameters: unknown seed; a trial's parameters are"),
        (
            {key: value for key, value in PARAMS.items() if key != "mode"},
            r"trial parameters: missing mode",
        ),
    ],
)
def test_trial_settings_from_params_rejects_bad_params(params: dict[str, Any], match: str) -> None:
    with pytest.raises(UserError, match=match):
        TrialSettings.from_params(params)
