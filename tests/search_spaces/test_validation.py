from __future__ import annotations

from typing import Any

import pytest

from search_spaces import FloatRange, IntRange, SearchSpace, get_space, validate_space
from trainables.errors import UserError

BAD_OVERRIDES: list[tuple[dict[str, Any], str]] = [
    (
        {"schedule_gamma": IntRange(1, 4)},
        r"search space 'normal': the step schedule at the low ends .*field gamma: .*"
        r"greater than or equal to 2",
    ),
    ({"safety_factor": FloatRange(0.0, 1.0)}, r"'normal': field safety_factor: low must be > 0"),
    ({"safety_factor": FloatRange(-0.5, 0.9)}, r"'normal': field safety_factor: low must be > 0"),
    (
        {"safety_factor": FloatRange(0.5, 1.5)},
        r"'normal': field safety_factor: high must be <= 1\.0",
    ),
    ({"batch_size": IntRange(512, 64)}, r"'normal': field batch_size: the range is empty"),
    (
        {"learning_rate": FloatRange(1e-2, 1e-4, log=True)},
        r"'normal': field learning_rate: the range is empty \(low > high\)",
    ),
    ({"eval_multiplier": IntRange(4, 1)}, r"'normal': field eval_multiplier: the range is empty"),
    ({"batch_size": IntRange(0, 64)}, r"'normal': field batch_size: low must be >= 1"),
    ({"batch_size": IntRange(-8, 64)}, r"'normal': field batch_size: low must be >= 1"),
    (
        {"schedule_max_batch_size": IntRange(0, 64)},
        r"'normal': the step schedule .*field max_batch_size: .*greater than 0",
    ),
    (
        {"schedule_final_batch_size": IntRange(-4, 64)},
        r"'normal': the linear schedule .*field final_batch_size",
    ),
    ({"schedule_step_size": IntRange(0, 4)}, r"'normal': the step schedule .*field step_size"),
    ({"eval_multiplier": IntRange(0, 4)}, r"'normal': field eval_multiplier: low must be >= 1"),
    ({"learning_rate": FloatRange(0.0, 1e-2)}, r"'normal': field learning_rate: low must be > 0"),
    (
        {"schedule_type": ("none", "zigzag")},
        r"'normal': field schedule_type: unknown schedule type 'zigzag'; choose from none, step",
    ),
    ({"schedule_type": ("piecewise",)}, r"field schedule_type: unknown .*'piecewise' \(piece"),
    ({"schedule_type": ()}, r"'normal': field schedule_type must be a non-empty tuple"),
    ({"schedule_type": ("step", "step")}, r"field schedule_type lists a type twice"),
    ({"mode": "supervised"}, r"'normal': field mode must be one of normal, autoencoder, curr"),
    ({"size": "huge"}, r"'normal': field size must be one of teacher, student, got 'huge'"),
    ({"epochs": 0}, r"'normal': field epochs must be an integer >= 1, got 0"),
    ({"epochs": 2.5}, r"'normal': field epochs must be an integer >= 1, got 2\.5"),
    ({"window": 1}, r"'normal': field window must be an integer >= 2"),
    ({"dataset": ""}, r"'normal': field dataset must be a non-empty string"),
    ({"metric": ""}, r"'normal': field metric must be a non-empty string"),
    ({"direction": "maximize"}, r"'normal': field direction must be 'max' or 'min'"),
    ({"batch_size": (8, 64)}, r"'normal': field batch_size must be an IntRange"),
    ({"safety_factor": IntRange(1, 1)}, r"'normal': field safety_factor must be a FloatRange"),
    (
        {"batch_size": IntRange(8.0, 64)},  # type: ignore[arg-type]
        r"'normal': field batch_size: low and high must be int",
    ),
    (
        {"batch_size": IntRange(0, 64, log=True)},
        r"'normal': field batch_size: low must be >= 1",
    ),
    (
        {"safety_factor": FloatRange(0.3, float("nan"))},
        r"'normal': field safety_factor: low and high must be finite",
    ),
    (
        {"schedule_step_size": IntRange(20, 30)},
        r"'normal': field schedule_step_size: low must be <= epochs \(5\)",
    ),
    (
        {"schedule_num_epochs": IntRange(11, 12)},
        r"'normal': field schedule_num_epochs: low must be <= epochs \(5\)",
    ),
]


@pytest.mark.parametrize(("changes", "match"), BAD_OVERRIDES)
def test_validate_space_rejects_bad_field(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(UserError, match=match):
        get_space("normal").with_overrides(**changes)


@pytest.mark.parametrize(("changes", "match"), BAD_OVERRIDES[:6])
def test_validate_space_rejects_bad_field_at_construction(
    changes: dict[str, Any], match: str
) -> None:
    with pytest.raises(UserError, match=match.replace("'normal'", "'custom'")):
        SearchSpace(name="custom", mode="normal", **changes)


def test_validate_space_rejects_kd_teacher() -> None:
    with pytest.raises(UserError, match=r"'kd': field size: mode kd trains a student"):
        get_space("kd").with_overrides(size="teacher")


def test_validate_space_rejects_empty_name() -> None:
    with pytest.raises(UserError, match=r"search space name must be a non-empty string"):
        SearchSpace(name="", mode="normal")


def test_validate_space_accepts_single_value_ranges_and_no_step_cap() -> None:
    space = get_space("normal").with_overrides(
        batch_size=IntRange(64, 64),
        safety_factor=FloatRange(1.0, 1.0),
        schedule_type=("step",),
        schedule_max_batch_size=None,
    )
    validate_space(space)
    assert "schedule_max_batch_size" not in space.schedule_ranges("step")
