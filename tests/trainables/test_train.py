from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.trainables.data.helpers import SOURCE_CONTRADICTIONS, ctt_rows, write_csv

JSON_KEYS = {
    "mode",
    "size",
    "epochs",
    "val_f1",
    "test",
    "train_batch_size",
    "eval_batch_size",
    "num_train_batches_per_epoch",
    "seconds",
    "run_dir",
}


def train(*args: str | Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trainables.train",
            "--num-messages",
            "30000",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / "runs"),
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_json_output_and_one_line_per_epoch(tmp_path: Path) -> None:
    result = train(
        "--mode",
        "normal",
        "--size",
        "student",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--json",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload.keys() >= JSON_KEYS
    assert payload["train_batch_size"] == 32 and payload["num_train_batches_per_epoch"] == 6
    assert Path(payload["run_dir"]).is_dir()
    epoch_lines = [line for line in result.stderr.splitlines() if " epoch " in line]
    assert len(epoch_lines) == 2 and "val_f1" in epoch_lines[-1]
    assert "\r" not in result.stderr  # no progress bar when not on a terminal
    assert "GPU available" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "normal", "--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        (["--mode", "magic"], "invalid choice: 'magic'"),
        (["--mode", "normal", "--size", "huge"], "invalid choice: 'huge'"),
        (["--mode", "kd", "--teacher", "/no/such/run"], "--teacher /no/such/run: no such file"),
        (["--mode", "kd", "--teacher", "/"], "--teacher /: a folder without a model.pt"),
        (
            ["--config", "/no/run", "--mode", "normal", "--tune-batch-size"],
            "--config re-runs /no/run as it was: --mode, --num-messages",
        ),
        (
            ["--mode", "normal", "--tune-batch-size", "--tuner-tolerance", "1.5"],
            "--tuner-tolerance must be in [0, 1), got 1.5",
        ),
        (
            ["--mode", "normal", "--tune-batch-size", "--memory-budget", "64"],
            "--memory-budget 64: 64 bytes, too little for any batch; a unit is missing?",
        ),
    ],
)
def test_train_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = train(*args, "--epochs", "1", tmp_path=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def _interrupted(tmp_path: Path, args: list[str], when: str, *, after_s: float = 0.0) -> str:
    """Run `trainables.train ARGS`, send it Ctrl-C `after_s` seconds after the stderr line
    holding `when`, check that it exits 130 with no traceback, and return the rest of stderr."""
    command = [sys.executable, "-m", "trainables.train", *args]
    command += ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "runs")]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if when in line:
                time.sleep(after_s)
                process.send_signal(signal.SIGINT)
                break
        rest = process.stderr.read()
        assert process.wait(timeout=120) == 130, rest[-2000:]
    finally:
        process.kill()
    assert rest.strip().endswith("interrupted") and "Traceback" not in rest
    return rest


def test_train_ctrl_c_in_training_exits_130_and_says_so(tmp_path: Path) -> None:
    # Lightning answers Ctrl-C in fit with sys.exit(1): the run exited 1 without a word.
    args = ["--mode", "normal", "--epochs", "30", "--num-messages", "30000"]
    _interrupted(tmp_path, args, "epoch 1/30")  # inside fit


def test_train_ctrl_c_in_the_tuner_exits_130_and_leaves_no_run_directory(tmp_path: Path) -> None:
    # Lightning's tuner answers Ctrl-C with sys.exit(1) as fit does: the run exited 1 silently.
    args = ["--mode", "normal", "--size", "teacher", "--epochs", "1", "--tune-batch-size"]
    args += ["--memory-budget", "3GiB", "--no-tuner-aim"]
    # 3 s into Lightning's scale_batch_size (the search takes ~30 s).
    rest = _interrupted(tmp_path, args, "tuner: searching", after_s=3)
    assert "max train batch" not in rest  # it was stopped inside the search
    assert not list((tmp_path / "runs").glob("normal-teacher-*"))  # no run directory left


def test_train_budget_too_small_for_any_batch_is_an_oom_result(tmp_path: Path) -> None:
    # A fresh process, so no memory freed by earlier work can hide the limit.
    result = train(
        "--mode",
        "normal",
        "--size",
        "teacher",
        "--epochs",
        "1",
        "--tune-batch-size",
        "--memory-budget",
        "4MiB",
        "--json",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["oom"] is True and payload["oom_stage"] == "tuner"
    assert payload["memory_budget_bytes"] == 4 << 20
    run_dir = Path(payload["run_dir"])
    assert not (run_dir / "model.pt").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["oom"] is True
    # No size was applied: none is reported (64 was the datamodule's default, never tried).
    saved = json.loads((run_dir / "config.json").read_text())
    for sizes in (payload, saved):
        assert sizes["train_batch_size"] is None and sizes["eval_batch_size"] is None
    assert payload["num_train_batches_per_epoch"] is None
    replay = subprocess.run(
        [sys.executable, "-m", "trainables.train", "--config", str(run_dir)],
        capture_output=True,
        text=True,
    )
    assert replay.returncode == 2 and "ran out of memory in the tuner" in replay.stderr


def test_train_a_prerequisite_out_of_memory_is_the_runs_oom_result(tmp_path: Path) -> None:
    # The VGAE curriculum trains first inherits the budget and runs out of memory: that was a
    # MemoryError traceback, exit 1, no JSON.
    result = train(
        *("--mode", "curriculum", "--size", "student", "--epochs", "1", "--json"),
        *("--tune-batch-size", "--memory-budget", "4MiB"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout)
    # Tuned under the run's budget, as the run is: out of memory in its tuner.
    assert payload["oom"] is True and payload["oom_stage"] == "tuner"
    assert payload["oom_prerequisite"] == "vgae" and payload["train_batch_size"] is None
    run_dir = Path(payload["run_dir"])
    assert json.loads((run_dir / "metrics.json").read_text())["oom_prerequisite"] == "vgae"
    assert json.loads((run_dir / "config.json").read_text())["mode"] == "curriculum"
    assert (run_dir / "prerequisites" / "autoencoder-student" / "metrics.json").is_file()
    assert "the VGAE this run depends on ran out of memory (tuner)" in result.stderr
    prerequisite = json.loads(
        (run_dir / "prerequisites/autoencoder-student/config.json").read_text()
    )
    assert prerequisite["batching"]["schedule"]["type"] == "none"
    assert prerequisite["batch_size"] == 64  # the most it may use: not the run's own sizes


@pytest.mark.parametrize(("flag", "aim"), [([], True), (["--no-tuner-aim"], False)])
def test_train_tuner_aim_is_on_unless_turned_off(flag: list[str], aim: bool) -> None:
    from trainables.train import _config_from_args, build_parser

    args = build_parser().parse_args(["--mode", "normal", "--tune-batch-size", *flag])
    assert _config_from_args(args).batching.tuner.aim is aim


def test_train_budget_past_the_machines_memory_is_an_error_before_any_work(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "trainables.train", "--mode", "normal", "--tune-batch-size"),
            *("--memory-budget", "100TiB", "--out", str(tmp_path / "runs")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # a CPU budget, also on a GPU host
    )
    assert result.returncode == 2
    assert "--memory-budget 100TiB is more than the memory this process can have" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--safety-factor", "0.5"], "--safety-factor"),
        (
            ["--eval-multiplier", "3", "--safety-factor", "auto"],
            "--safety-factor, --eval-multiplier",
        ),
        (["--tuner-mode", "power"], "--tuner-mode"),
        (["--tuner-tolerance", "0.1", "--no-tuner-aim"], "--tuner-tolerance, --no-tuner-aim"),
        (["--frontier-memo", "m.json", "--factor-store", "f.json"], "--frontier-memo, --factor"),
    ],
)
def test_train_tuner_options_without_the_tuner_are_an_error(flags: list[str], named: str) -> None:
    from trainables.errors import UserError
    from trainables.train import _config_from_args, build_parser

    args = build_parser().parse_args(["--mode", "normal", *flags])
    with pytest.raises(UserError, match=f"^{named}.*: tuner options; add --tune-batch-size"):
        _config_from_args(args)
    tuned = _config_from_args(build_parser().parse_args(["--mode", "normal", "--tune-batch-size"]))
    assert tuned.batching.eval_multiplier == 2.0  # the default, when not given
    assert tuned.batching.tuner.mode == "binsearch" and tuned.batching.tuner.aim
    args = build_parser().parse_args(["--mode", "normal", "--tune-batch-size", *flags])
    assert _config_from_args(args).batching.tune


@pytest.mark.parametrize("flag", [[], ["--factor-store", "elsewhere/factors.json"]])
def test_train_factor_store_option_names_the_adaptive_store(flag: list[str]) -> None:
    from trainables.train import _config_from_args, build_parser

    args = build_parser().parse_args(
        ["--mode", "normal", "--tune-batch-size", "--safety-factor", "auto", *flag]
    )
    expected = Path(flag[-1]) if flag else None  # None: the cache folder's store
    assert _config_from_args(args).batching.factor_store_path == expected


def test_train_at_the_memoised_maximum_holds_for_every_epoch(tmp_path: Path) -> None:
    # A fresh process that takes the tuned maximum from the memo (as an HPO trial beside the one
    # that tuned does) trains at it through every epoch. The teacher's optimiser state and
    # gradients are 15 MiB of this 64 MiB budget: a probe that measured a fresh optimiser's first
    # step, without them, found 12, and the second epoch at 12 ran out of memory.
    options: list[str | Path] = [
        *("--mode", "normal", "--size", "teacher", "--epochs", "2", "--json"),
        *("--tune-batch-size", "--memory-budget", "64MiB", "--safety-factor", "1.0"),
        *("--batch-size", "8192", "--frontier-memo", tmp_path / "frontier.json"),
    ]
    tuned = train(*options, tmp_path=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    first = json.loads(tuned.stdout)
    again = train(*options, tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert not first["memo_hit"] and second["memo_hit"]
    assert second["batch_sizes_per_epoch"] == [first["tuned_max_batch_size"]] * 2
    assert (first["oom"], second["oom"]) == (False, False)


@pytest.mark.parametrize(
    "case", ["teacher-text", "teacher-bytes", "teacher-config", "out-file", "cache-file"]
)
def test_train_names_a_bad_file_or_folder_and_exits_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainables.cli import run_cli
    from trainables.train import main

    junk = tmp_path / "junk"
    junk.write_text("not a checkpoint\n")
    args = ["--mode", "kd", "--epochs", "1", "--num-messages", "30000"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "runs")]
    if case.startswith("teacher-") and case != "teacher-config":
        weights = tmp_path / "model.pt"
        weights.write_text("hello world" if case == "teacher-text" else "junk")
        args += ["--teacher", str(weights)]
        message = f"checkpoint {weights} is not a weights-only state dict"
    elif case == "teacher-config":
        run = tmp_path / "teacher"
        run.mkdir()
        (run / "model.pt").write_bytes(b"")
        (run / "config.json").write_text('{"mode": "norm')
        args += ["--teacher", str(run)]
        message = f"checkpoint {run}: {run / 'config.json'} is not valid JSON"
    elif case == "out-file":
        args += ["--out", str(junk / "runs")]
        message = f"--out {junk / 'runs'}: {junk} is a file, not a folder"
    else:
        args += ["--cache-dir", str(junk)]
        message = f"graph cache {junk} is a file, not a folder"
    assert run_cli(main, args) == 2
    assert message in capsys.readouterr().err
    assert junk.read_text() == "not a checkpoint\n"


def test_train_refuses_data_too_small_for_a_validation_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One graph (150 messages, window 100) trained with no validation at all: exit 0, an empty
    # "done" line and Lightning's and torchmetrics' warnings on stderr.
    from trainables.cli import run_cli
    from trainables.train import main

    (tmp_path / "data" / "d" / "train_01_x").mkdir(parents=True)
    write_csv(tmp_path / "data" / "d" / "train_01_x" / "a.csv", ctt_rows(150, attack_every=7))
    args = ["--mode", "normal", "--epochs", "1", "--data-dir", str(tmp_path / "data")]
    args += ["--dataset", "d", "--no-cache", "--out", str(tmp_path / "runs")]
    assert run_cli(main, args) == 2
    err = capsys.readouterr().err
    assert "the validation split of d is empty: the training split of d has only 1 graphs" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


PIECEWISE = '{"type": "piecewise", "milestones": [[2, 32], [5, 64]]}'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Each pair was taken, one of the two silently dropped.
        (
            ["--tune-batch-size", "--eval-multiplier", "3", "--eval-batch-size", "32"],
            "--eval-multiplier 3 and --eval-batch-size 32 both set the eval batch size",
        ),
        *SOURCE_CONTRADICTIONS,
        # A model or setting of another mode was silently ignored.
        (["--teacher", "runs/x"], "--teacher: not used by --mode normal; leave it out"),
        (
            ["--vgae", "a", "--gat", "b", "--kd-alpha", "0.5", "--prerequisite-epochs", "2"],
            "--vgae, --gat, --prerequisite-epochs, --kd-alpha: not used by --mode normal",
        ),
        # Epochs count from 0: a milestone at --epochs is never reached, and was ignored.
        (
            ["--epochs", "5", "--schedule", PIECEWISE],
            "--schedule: milestone 1 [5, 64] is never reached: --epochs 5 trains epochs 0 to 4",
        ),
    ],
)
def test_train_contradictory_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    from trainables.cli import run_cli
    from trainables.train import main

    assert run_cli(main, ["--mode", "normal", "--out", str(tmp_path / "runs"), *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "runs").exists()


def test_train_piecewise_milestone_at_the_last_epoch_is_taken() -> None:
    from trainables.train import _config_from_args, build_parser

    schedule = '{"type": "piecewise", "milestones": [[4, 64]]}'
    args = build_parser().parse_args(["--mode", "normal", "--epochs", "5", "--schedule", schedule])
    assert _config_from_args(args).batching.schedule.type == "piecewise"


def _saved_run(out: Path) -> dict[str, object]:
    """A finished run's config.json, as `trainables.train` writes it (the keys a replay reads)."""
    return {
        "mode": "normal",
        "size": "student",
        "epochs": 2,
        "batch_size": None,
        "train_batch_size": 32,
        "batch_sizes_per_epoch": [32, 32],
        "eval_batch_size": 64,
        "learning_rate": 0.001,
        "seed": 0,
        "val_fraction": 0.2,
        "kd_temperature": 4.0,
        "kd_alpha": 0.7,
        "out_dir": str(out),
        "memory_budget_bytes": None,
        "prerequisites": {},
        "batching": {"schedule": {"type": "none"}},
        "source": {
            **dict(data_dir=None, dataset=None, window=100, stride=None, num_messages=30000),
            **dict(seed=0, on_bad_rows="error", cache_dir=None, use_cache=True),
        },
    }


def test_train_config_file_errors_name_the_file_and_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # They named the options (--epochs, --window, --teacher), which the command line had not.
    from trainables.cli import run_cli
    from trainables.train import main
    from trainables.training import TrainConfig

    saved = _saved_run(tmp_path / "runs")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(saved))
    assert TrainConfig.reproducing(config).epochs == 2  # the file as a run writes it
    source = saved["source"]
    assert isinstance(source, dict)
    damages: list[tuple[dict[str, Any], str]] = [
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"learning_rate": -1}, "learning_rate must be a finite number > 0, got -1"),
        ({"size": "huge"}, "size: unknown model size 'huge'"),
        ({"source": {**source, "window": 1}}, "source.window must be an integer >= 2, got 1"),
        (
            {"source": {**source, "num_messages": 10}},
            "source.num_messages must be >= 10 x source.window (1000)",
        ),
        ({"source": {**source, "seed": -1}}, "source.seed must be an integer >= 0, got -1"),
        (
            {"source": {**source, "data_dir": "/no/such/data"}},
            "source.data_dir /no/such/data: no such directory",
        ),
        (
            {"mode": "kd", "prerequisites": {"teacher": "/no/teacher/model.pt"}},
            "prerequisites.teacher /no/teacher/model.pt: no such file or folder",
        ),
        ({"batch_sizes_per_epoch": [32, 0]}, "batch_sizes_per_epoch must be a list of integers"),
        ({"batching": {"schedule": {"type": "step"}}}, "batching.schedule: invalid batch-size"),
    ]
    for damage, message in damages:
        config.write_text(json.dumps({**saved, **damage}))
        assert run_cli(main, ["--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert f"error: --config {config}: {message}" in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_train_says_once_that_validation_holds_one_class(tmp_path: Path) -> None:
    # Attack-free captures: an autoencoder trains on them, but AUROC is not defined on one
    # class. torchmetrics warned at every validation, with its own source line after it.
    folder = tmp_path / "data" / "clean" / "train_01_attack_free"
    folder.mkdir(parents=True)
    write_csv(folder / "a.csv", ctt_rows(3000, seed=1))
    args = ["--mode", "autoencoder", "--size", "student", "--epochs", "2", "--batch-size", "8"]
    args += ["--data-dir", str(tmp_path / "data"), "--dataset", "clean", "--no-cache"]
    result = subprocess.run(
        [sys.executable, "-m", "trainables.train", *args, "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "holds normal graphs only" in line]
    assert len(lines) == 1 and "the validation split of clean (" in lines[0], result.stderr
    assert "No positive samples" not in result.stderr and "warnings.warn" not in result.stderr
