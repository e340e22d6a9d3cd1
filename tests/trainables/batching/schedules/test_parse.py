"""`trainables.batching.schedules.parse`: schedules from JSON, errors that name the field."""

from __future__ import annotations

import pytest

from trainables.batching.schedules import parse_schedule, schedule_from_dict
from trainables.errors import UserError


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "none"}',
        '{"type": "step", "step_size": 10, "gamma": 2, "max_batch_size": 1024}',
        '{"type": "linear", "final_batch_size": 512, "num_epochs": 10, "lr_scaling": "sqrt"}',
        '{"type": "exponential", "final_batch_size": 512, "num_epochs": 10}',
        '{"type": "cosine", "final_batch_size": 512, "num_epochs": 10, "cap_at_tuned_max": false}',
        '{"type": "piecewise", "milestones": [[0, 64], [10, 128]]}',
    ],
)
def test_parse_schedule_round_trips_every_type(text: str) -> None:
    schedule = parse_schedule(text)
    assert parse_schedule(schedule.model_dump_json()) == schedule
    assert schedule_from_dict(schedule.model_dump()) == schedule


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"type": "step", "step_size": 10, "gamma": 1}', r"field gamma: .* equal to 2 \(got 1\)"),
        (
            '{"type": "step", "step_size": 0, "gamma": 2}',
            r"field step_size: .* equal to 1 \(got 0\)",
        ),
        ('{"type": "step", "gamma": 2}', "field step_size: Field required"),
        ('{"type": "step", "step_size": 1, "gamma": 2.5}', "field gamma: .*integer"),
        ('{"type": "step", "step_size": 1, "gamma": 2, "max_batch_size": 0}', "max_batch_size"),
        ('{"type": "step", "step_size": 1, "gamma": 2, "gama": 3}', "field gama: Extra inputs"),
        ('{"type": "linear", "final_batch_size": 0, "num_epochs": 3}', "field final_batch_size"),
        ('{"type": "cosine", "final_batch_size": 8, "num_epochs": 0}', "field num_epochs"),
        ('{"type": "none", "lr_scaling": "cubic"}', "field lr_scaling: Input should be"),
        ('{"type": "piecewise", "milestones": []}', "field milestones: at least one .* needed"),
        # Only the bad item: not also "Tuple should have at least 1 item after validation".
        ('{"type": "piecewise", "milestones": [[1, "x"]]}', r"milestones\.0\.1: [^;]*$"),
        # pydantic's lax mode took true for 1.
        ('{"type": "step", "step_size": true, "gamma": 2}', "field step_size: .*not a boolean"),
        ('{"type": "piecewise", "milestones": [[false, 8]]}', "milestones.0.0: .*not a boolean"),
        (
            '{"type": "piecewise", "milestones": [[0, 64], [0, 128]]}',
            r"milestone 1 \[0, 128\]: repeats the epoch of milestone 0 \[0, 64\]",
        ),
        (
            '{"type": "piecewise", "milestones": [[5, 64], [2, 128]]}',
            r"milestone 1 \[2, 128\]: comes before milestone 0 \[5, 64\]",
        ),
        (
            '{"type": "piecewise", "milestones": [[0, 64], [4, 0]]}',
            r"milestone 1 \[4, 0\]: batch size must be >= 1",
        ),
        ('{"type": "piecewise", "milestones": [[-1, 64]]}', r"milestone 0 \[-1, 64\]: epoch"),
        ('{"type": "stepwise"}', "field type must be one of none, step, .*got 'stepwise'"),
        ('{"step_size": 3}', "field type must be one of none, step"),
        ("[1, 2]", "--schedule: expected a JSON object"),
        ('{"type": "step", ', "--schedule: not valid JSON"),
    ],
)
def test_parse_schedule_names_the_wrong_field(text: str, match: str) -> None:
    with pytest.raises(UserError, match=match):
        parse_schedule(text)


def test_schedule_from_dict_names_the_option() -> None:
    with pytest.raises(UserError, match=r"^trial config schedule: invalid batch-size schedule"):
        schedule_from_dict({"type": "step"}, option="trial config schedule")
