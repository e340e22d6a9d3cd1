from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainables.data.helpers import ctt_rows, write_csv
from tests.trainables.data.test_source import make_dataset

JSON_KEYS = {
    "num_graphs",
    "num_attack_graphs",
    "mean_nodes",
    "max_nodes",
    "mean_edges",
    "max_edges",
    "vocab_size",
    "num_node_features",
    "seconds",
    "cache_hit",
}


def build(*args: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trainables.data",
            "build",
            "--cache-dir",
            str(cache),
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_build_json_is_one_object_and_hits_cache(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    first = build("--data-dir", root, "--json", cache=tmp_path / "c")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary.keys() >= JSON_KEYS
    assert summary["num_graphs"] == 20 and summary["num_node_features"] == 11
    assert summary["cache_hit"] is False
    second = json.loads(build("--data-dir", root, "--json", cache=tmp_path / "c").stdout)
    assert second["cache_hit"] is True and second["num_graphs"] == 20


def test_build_text_summary(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    result = build("--data-dir", root, "--split", "test", "--window", "50", cache=tmp_path / "c")
    assert result.returncode == 0, result.stderr
    assert "set_01 / test: 20 graphs" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-dir", "/nonexistent/dir"], "--data-dir /nonexistent/dir: no such directory"),
        (["--window", "1"], "--window must be an integer >= 2"),
        (["--dataset", "hcrl_sa"], "--dataset hcrl_sa needs --data-dir, the folder that holds"),
    ],
)
def test_build_bad_option_exits_2_without_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = build(*args, cache=tmp_path / "c")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_build_bad_row_exits_2_and_skip_reports(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d")
    bad = root / "set_01" / "train_01_attack_free" / "capture-1.csv.gz"
    write_csv(bad, [*ctt_rows(400, seed=1), "1.0,081,ABC,0"])
    result = build("--data-dir", root, cache=tmp_path / "c")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{bad}: line 402: data_field has an odd number of hex digits" in result.stderr
    skipped = build("--data-dir", root, "--on-bad-rows", "skip", "--json", cache=tmp_path / "c")
    assert skipped.returncode == 0
    assert json.loads(skipped.stdout)["dropped_rows"] == {str(bad): 1}
    assert "dropped 1 bad rows" in skipped.stderr


def test_build_real_hcrl_sa(shared_data: Path, tmp_path: Path) -> None:
    result = build(
        "--data-dir", shared_data, "--dataset", "hcrl_sa", "--json", cache=tmp_path / "c"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # 9,367 graphs before its two attack-free captures, listed in both train folders, were read
    # once each.
    assert 6200 <= summary["num_graphs"] <= 6350
    assert summary["num_node_features"] == 11
