from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from trainables.training.files import plain, write_json


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
