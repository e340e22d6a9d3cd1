from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("nope", "unknown search space 'nope'; choose one of curriculum, normal"),
        ("curriculum", "--space curriculum: the HPO study is not built yet"),
    ],
)
def test_hpo_run_says_what_is_wrong_and_exits_2(space: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hpo.run", "--space", space],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
