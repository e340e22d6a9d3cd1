from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainables.data.helpers import SOURCE_CONTRADICTIONS, ctt_rows, write_csv
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


def test_build_warns_once_of_a_cache_it_cannot_write(tmp_path: Path) -> None:
    # A build writes a vocabulary and each split's graphs: one warning per entry was a
    # repeated line (five for synthetic traffic). Nothing can make a folder under /proc.
    result = build("--num-messages", "20000", cache=Path("/proc/batch-hpo-test/cache"))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "cannot be written" in line]
    assert len(warnings) == 1, result.stderr
    assert "synthetic / train: 150 graphs" in result.stdout


def test_build_warns_of_a_window_no_capture_holds(tmp_path: Path) -> None:
    # It printed "0 graphs" and nothing else: a window past every capture's length.
    root = make_dataset(tmp_path / "d")
    result = build("--data-dir", root, "--window", "100000", cache=tmp_path / "c")
    assert result.returncode == 0, result.stderr
    assert "set_01 / train: 0 graphs" in result.stdout
    assert "set_01 / train: no graphs: no capture holds --window 100000 messages" in result.stderr


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


def _build_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """`trainables.data build ARGS` run in this process; asserts exit 2 and returns stderr."""
    from trainables.cli import run_cli
    from trainables.data.__main__ import main

    assert run_cli(main, ["build", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    return captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        *SOURCE_CONTRADICTIONS,
        # The generator's own checks named its arguments: "seed must be an integer >= 0".
        (["--data-seed", "-1"], "--data-seed must be an integer >= 0, got -1"),
        (
            ["--num-messages", str(10**12)],
            "--num-messages must be at most 1_000_000_000 for synthetic traffic, got"
            " 1_000_000_000_000: the generator holds every message in memory",
        ),
    ],
)
def test_build_contradictory_or_out_of_range_options_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert message in _build_in_process([*args, "--window", "50"], capsys)
    assert not Path("c").exists()


def test_build_names_an_empty_dataset_or_split_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An empty split folder was skipped (--split train read the other train_* folder), or
    # reported as missing ("no such split", "--dataset empty: not found").
    root = make_dataset(tmp_path / "d")
    (root / "set_01" / "train_03_empty").mkdir()
    (root / "set_01" / "test_02_notes").mkdir()
    (root / "set_01" / "test_02_notes" / "README.txt").write_text("to come\n")
    (root / "bare").mkdir()
    (root / "empty" / "train_01_attack_free").mkdir(parents=True)
    (tmp_path / "none").mkdir()
    empty = f"split folder {root / 'set_01' / 'train_03_empty'} is empty"
    for args, message in [
        (["--dataset", "set_01"], empty),  # --split train
        (["--dataset", "set_01", "--split", "train_03_empty"], empty),
        (
            ["--dataset", "empty"],
            f"split folder {root / 'empty' / 'train_01_attack_free'} is empty",
        ),
        (["--dataset", "bare"], f"--dataset bare: {root / 'bare'} is empty"),
    ]:
        err = _build_in_process(["--data-dir", str(root), *args, "--no-cache"], capsys)
        assert message in err, (args, err)
    (root / "set_01" / "train_03_empty").rmdir()
    args = ["--data-dir", str(root), "--dataset", "set_01", "--split", "test", "--no-cache"]
    err = _build_in_process(args, capsys)
    assert f"split folder {root / 'set_01' / 'test_02_notes'} holds no capture file" in err
    err = _build_in_process(["--data-dir", str(tmp_path / "none"), "--no-cache"], capsys)
    assert f"--data-dir {tmp_path / 'none'}: the folder is empty" in err
