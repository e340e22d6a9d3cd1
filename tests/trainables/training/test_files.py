from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from trainables.training.files import json_text, plain, write_json


class _Schedule(BaseModel):
    type: str
    step_size: int


def test_plain_makes_paths_tuples_and_models_json_ready() -> None:
    value = {
        "out": Path("/runs/a"),
        "sizes": (1, 2),
        "schedule": _Schedule(type="step", step_size=2),
    }
    assert plain(value) == {
        "out": "/runs/a",
        "sizes": [1, 2],
        "schedule": {"type": "step", "step_size": 2},
    }
    json.dumps(plain(value))


def test_write_json_replaces_a_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_json(path, {"b": 1, "a": [1, 2]})
    write_json(path, {"c": 3})
    assert json.loads(path.read_text()) == {"c": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    write_json(path, {"z": 1, "a": 2})
    assert path.read_text().index('"a"') < path.read_text().index('"z"')  # keys sorted


def test_json_text_writes_a_diverged_loss_as_null_not_a_bare_nan(tmp_path: Path) -> None:
    payload = {"val_loss": float("nan"), "history": [{"train_loss": float("inf")}, {"x": 1.5}]}
    text = json_text(payload)
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}")) == {
        "history": [{"train_loss": None}, {"x": 1.5}],
        "val_loss": None,
    }
    write_json(tmp_path / "metrics.json", payload)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(text)
