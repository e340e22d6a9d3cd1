"""`hpo.estimate.cli`: the table, the command line's errors and its JSON."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hpo.estimate import format_table, main
from tests.hpo.estimate._estimates import JSON_KEYS, make_estimate, make_machinery, make_probe
from tests.trainables.data.helpers import SOURCE_CONTRADICTIONS, ctt_rows, write_csv
from trainables.cli import run_cli
from trainables.data.source import GraphSource


def test_format_table_puts_datasets_side_by_side() -> None:
    first = make_estimate(make_probe(), make_machinery(), max_concurrent=2)
    second = make_estimate(make_probe(num_train=5000), make_machinery(), max_concurrent=2)
    table = format_table([first, second])
    assert table.splitlines()[1].split() == ["demo", "demo"]
    assert "sbatch --time" in table and first.slurm["time"] in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus", "0"], "--gpus must be an integer >= 1, got 0"),
        (["--gpus-per-node", "0"], "--gpus-per-node must be an integer >= 1, got 0"),
        (["--gpu-memory", "4XB"], "--gpu-memory"),
        (["--gpu-memory", "0"], "--gpu-memory must be > 0"),
        (["--memory-budget=0"], "--memory-budget must be > 0"),
        (["--memory-budget", "64"], "--memory-budget 64: 64 bytes, too little for any batch"),
        (["--num-samples", "0"], "--num-samples must be an integer >= 1"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
        (["--gpus-per-trial", "-1"], "--gpus-per-trial must be a number >= 0"),
        (["--gpus-per-trial", "1.5"], "--gpus-per-trial 1.5: above 1 it must be a whole number"),
        (["--margin", "0.5"], "--margin must be >= 1"),
        (["--margin", "inf"], "--margin must be >= 1"),
        (["--compare", "a", "b"], "--compare names datasets under --data-dir"),
        (["--data-dir", "/nonexistent/captures", "--dataset", "x"], "/nonexistent/captures"),
        (["--space", "nope"], "unknown search space 'nope'"),
        (["--set", "batch_size=0..4"], "--set batch_size=0..4: search space 'normal': field"),
        # Refused by hpo.run: an estimate of it sized a study that cannot run.
        (["--memory-budget", "1000TiB"], "is more than the memory this process can have"),
        # GPU counts that do not fit: estimated as a study whose trials never start.
        (
            ["--gpus", "2", "--gpus-per-node", "1", "--gpus-per-trial", "2"],
            "--gpus-per-trial 2 is more than --gpus-per-node 1: a trial's GPUs are on one node",
        ),
        (["--gpus", "2", "--gpus-per-node", "4"], "--gpus-per-node 4 is more than --gpus 2"),
        (["--gpus", "2", "--gpus-per-trial", "3"], "--gpus-per-trial 3 is more than --gpus 2"),
        *SOURCE_CONTRADICTIONS,
    ],
)
def test_estimate_cli_says_what_is_wrong_and_exits_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(main, ["--space", "normal", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_estimate_takes_the_space_as_hpo_run_changes_it_with_set() -> None:
    from hpo.estimate.cli import _resolve, build_parser
    from hpo.run import _new_config
    from hpo.run import build_parser as run_parser

    study = ["--space", "normal", "--smoke-test", "--set", "size=student"]
    study += ["--set", "batch_size=16..24"]
    config, _, _ = _resolve(build_parser().parse_args(study))
    assert config.space.size == "student" and config.space.batch_size.high == 24
    assert config.space == _new_config(Path("s"), run_parser().parse_args(study)).space


@pytest.mark.parametrize(
    ("num_rows", "attack_every", "message"),
    [
        (2000, 0, "--mode normal is supervised but the training split of d has no attack graphs"),
        # Fewer messages than a window: a ValueError traceback from the tuner's probe set.
        (50, 7, "the training split of d has no graphs (fewer messages than --window?)"),
        # One graph: no validation split, so every trial's metric was undefined.
        (150, 7, "the validation split of d is empty: the training split of d has only 1"),
    ],
)
def test_estimate_cli_refuses_data_no_trial_can_train_on(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    num_rows: int,
    attack_every: int,
    message: str,
) -> None:
    rows = ctt_rows(num_rows, attack_every=attack_every)
    (tmp_path / "data" / "d" / "train_01_x").mkdir(parents=True)
    write_csv(tmp_path / "data" / "d" / "train_01_x" / "a.csv", rows)
    args = ["--data-dir", str(tmp_path / "data"), "--dataset", "d", "--no-cache"]
    assert run_cli(main, ["--space", "normal", "--smoke-test", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_estimate_cli_names_compare_for_a_compared_dataset_not_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It blamed --dataset, which was not given (or named a dataset that is there).
    (tmp_path / "d" / "train_01_x").mkdir(parents=True)
    write_csv(tmp_path / "d" / "train_01_x" / "a.csv", ctt_rows(200))
    for dataset in ([], ["--dataset", "d"]):
        args = ["--data-dir", str(tmp_path), *dataset, "--compare", "nonexist", "--no-cache"]
        assert run_cli(main, ["--space", "normal", *args]) == 2
        err = capsys.readouterr().err
        assert f"--compare nonexist: not found in {tmp_path} (available: d)" in err, err


def test_estimate_cli_fails_fast_without_a_traceback() -> None:
    # A bad number is found before torch (or Ray) is imported: no measuring, no waiting.
    code = (
        "import sys; from hpo.estimate.cli import main; from trainables.cli import run_cli;"
        " rc = run_cli(main, ['--space', 'normal', '--gpus', '0']);"
        " print(rc, 'torch' in sys.modules, 'ray' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    assert "--gpus must be an integer >= 1, got 0" in result.stderr
    module = subprocess.run(
        [sys.executable, "-m", "hpo.estimate", "--space", "normal", "--margin", "0"],
        capture_output=True,
        text=True,
    )
    assert module.returncode == 2 and "Traceback" not in module.stderr
    assert "--margin must be >= 1" in module.stderr and module.stdout == ""


@pytest.mark.parametrize(
    ("dataset", "datasets"),
    [
        ([], ["a", "b"]),
        # --dataset is estimated too, first, and once (it used to be dropped for --compare's).
        (["--dataset", "b"], ["b", "a"]),
    ],
)
def test_estimate_cli_json_is_one_object_per_dataset(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dataset: list[str],
    datasets: list[str],
) -> None:
    import hpo.estimate.study

    for name in ("a", "b"):
        split = tmp_path / name / "train_01_attack_free"
        split.mkdir(parents=True)
        # Data a study can train on: the estimate checks it as hpo.run does.
        write_csv(split / "capture.csv", ctt_rows(2000))
        write_csv(split / "attacks.csv", ctt_rows(2000, seed=1, attack_every=7))
    seen: dict[str, Any] = {}

    def estimate_study(config: Any, *, sources: list[GraphSource], **kwargs: Any) -> list:
        seen.update(kwargs, config=config, datasets=[s.dataset_name for s in sources])
        return [
            dataclasses.replace(
                make_estimate(make_probe(), make_machinery(), max_concurrent=2), dataset=name
            )
            for name in seen["datasets"]
        ]

    monkeypatch.setattr(hpo.estimate.study, "estimate_study", estimate_study)
    monkeypatch.setattr(hpo.estimate.study, "warm_up_driver", lambda space: 0.0)
    args = ["--space", "kd", "--data-dir", str(tmp_path), "--compare", "a", "b", "--epochs", "3"]
    args += [
        *dataset,
        "--gpus",
        "8",
        "--gpus-per-node",
        "4",
        "--gpus-per-trial",
        "0.5",
        "--cluster",
    ]

    assert main([*args, "--json"]) == 0

    lines = capsys.readouterr().out.splitlines()
    estimates = [json.loads(line) for line in lines]
    assert [e["dataset"] for e in estimates] == datasets
    for estimate in estimates:
        assert set(estimate) >= JSON_KEYS
        slurm = estimate["slurm"]  # in the formats scripts/slurm/submit.sh reads
        assert re.fullmatch(r"\d{2,}:\d{2}:00", slurm["time"])
        assert re.fullmatch(r"\d+G", slurm["mem"]) and re.fullmatch(r"gpu:\d+", slurm["gres"])
        assert isinstance(slurm["nodes"], int) and slurm["nodes"] >= 1
    config = seen["config"]
    assert (config.space.name, config.space.epochs, config.num_samples) == ("kd", 3, 6)
    assert (config.gpus_per_trial, config.address) == (0.5, "auto")  # --cluster: joins one
    assert (seen["gpus"], seen["gpus_per_node"]) == (8, 4)


def test_the_estimate_sets_its_data_up_again_without_saying_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # `hpo.estimate` printed "split train: ... cache hit" and "data: ..." three more times per
    # dataset after the driver's `prepare_data` had said them once.
    import logging

    from hpo.estimate.probe import _data_seconds

    source = GraphSource(num_messages=30_000, cache_dir=tmp_path / "cache")
    level = logging.getLogger("trainables.data").level
    with caplog.at_level(logging.INFO):
        assert _data_seconds(source, seed=0) > 0
    assert [r.getMessage() for r in caplog.records if r.name.startswith("trainables.data")] == []
    assert logging.getLogger("trainables.data").level == level  # as it was
