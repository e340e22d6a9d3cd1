"""`python -m hpo.run` as users run it: bad input, and a driver killed mid-study then resumed."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from hpo.report import build_report
from hpo.study import StudyConfig
from search_spaces import IntRange
from tests.trainables.data.helpers import SOURCE_CONTRADICTIONS

NUM_SAMPLES = 5


def _hpo_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpo.run", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--space", "nope"], "unknown search space 'nope'; choose one of curriculum, normal"),
        (["--space", "normal", "--num-samples", "0"], "--num-samples must be an integer >= 1"),
        (["--space", "normal", "--memory-budget", "4XB"], "--memory-budget"),
        (
            ["--space", "normal", "--smoke-test", "--memory-budget", "100TiB"],
            "--memory-budget 100TiB is more than the memory this process can have",
        ),
        (["--space", "normal", "--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        (["--space", "normal", "--study-name", "a/b"], "--study-name must be a plain folder"),
        # A Ray metric tag could not carry it: the study crashed half made.
        (["--space", "normal", "--study-name", "ünï-study"], "--study-name must be a plain"),
        (["--space", "normal", "--resume"], "--resume: no study of space 'normal' under"),
        (
            ["--space", "normal", "--smoke-test", "--gpus-per-trial", "1"],
            "--gpus-per-trial 1: the Ray cluster has 0 GPUs in all",
        ),
        (
            ["--space", "kd", "--data-dir", "/nonexistent/captures", "--dataset", "x"],
            "/nonexistent/captures",
        ),
        (
            ["--space", "normal", "--smoke-test", "--address", "127.0.0.1:1"],
            "--address 127.0.0.1:1: no Ray cluster answers there",
        ),
        (
            ["--space", "normal", "--smoke-test", "--address", "headnode"],
            "--address headnode: expected auto, HOST:PORT or ray://HOST:PORT",
        ),
    ],
)
def test_hpo_run_says_what_is_wrong_and_exits_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = _hpo_run(*args, "--study-dir", str(tmp_path / "studies"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    # No study was started: no study directory was made.
    assert not any((tmp_path / "studies").glob("*/study.json"))


def test_hpo_run_with_a_file_for_study_dir_says_so(tmp_path: Path) -> None:
    # It used to report an --mlflow-uri error ("cannot write the SQLite store ... File exists").
    studies = tmp_path / "studies"
    studies.write_text("notes\n")
    result = _hpo_run("--space", "normal", "--smoke-test", "--study-dir", str(studies / "x"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"--study-dir {studies / 'x'}: {studies} is a file, not a folder" in result.stderr
    assert "mlflow" not in result.stderr and studies.read_text() == "notes\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        *SOURCE_CONTRADICTIONS,
        (["--resume", "--no-cache", "--cache-dir", "c"], "--no-cache and --cache-dir c"),
        (["--smoke-test", *SOURCE_CONTRADICTIONS[2][0]], SOURCE_CONTRADICTIONS[2][1]),
    ],
)
def test_hpo_run_contradictory_options_exit_2_before_a_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    from hpo.run import main
    from trainables.cli import run_cli

    studies = tmp_path / "studies"
    if "--resume" in args:
        args = [*args, "--study-name", "s"]  # found wrong before the study is looked for
    assert run_cli(main, ["--space", "normal", "--study-dir", str(studies), *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert not studies.exists()


def test_hpo_run_synthetic_options_keep_their_defaults_when_not_given(tmp_path: Path) -> None:
    from hpo.run import SMOKE_NUM_MESSAGES, _new_config, build_parser
    from trainables.data.source import DEFAULT_SYNTHETIC_MESSAGES

    def source(*args: str) -> tuple[int, int]:
        config = _new_config(
            tmp_path / "s", build_parser().parse_args(["--space", "normal", *args])
        )
        return config.source.num_messages, config.source.seed

    assert source() == (DEFAULT_SYNTHETIC_MESSAGES, 0)
    assert source("--smoke-test") == (SMOKE_NUM_MESSAGES, 0)
    assert source("--smoke-test", "--num-messages", "5000", "--data-seed", "3") == (5000, 3)


def test_set_changes_the_studys_space_is_kept_in_study_json_and_checked_on_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpo.run import (
        _check_resume_options,
        _given_options,
        _new_config,
        _resumed_config,
        build_parser,
        main,
    )
    from trainables.cli import run_cli
    from trainables.errors import UserError

    # A bad --set is exit 2 naming it, before any study is made (first:
    # run_cli sets up logging on this test's stderr).
    studies = tmp_path / "new"
    argv = ["--space", "normal", "--study-dir", str(studies), "--set", "safety_factor=0..1"]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert "--set safety_factor=0..1: search space 'normal': field safety_factor: low must" in err
    assert "Traceback" not in err and not studies.exists()

    study_dir = tmp_path / "studies" / "s"
    first = ["--space", "normal", "--smoke-test", "--set", "batch_size=16..48:linear"]
    first += ["--set", "size=student", "--set", "schedule_type=none,step"]
    config = _new_config(study_dir, build_parser().parse_args(first))
    space = config.space
    # --set wins over what --smoke-test sets (batch sizes 8..32), and the rest of it stays.
    assert space.batch_size == IntRange(16, 48) and space.epochs == 2
    assert (space.size, space.schedule_type) == ("student", ("none", "step"))
    study_dir.mkdir(parents=True)
    (study_dir / "study.json").write_text(json.dumps(config.to_json()))

    def resume(*extra: str) -> StudyConfig:
        argv = ["--space", "normal", "--study-dir", str(study_dir.parent), "--resume"]
        argv += ["--study-name", "s", *extra]
        args = build_parser().parse_args(argv)
        resumed = _resumed_config(study_dir, args)
        _check_resume_options(resumed, study_dir, args, _given_options(argv))
        return resumed

    assert resume().space == space  # read back from study.json
    assert resume(*first[2:]).space == space  # the same command line again
    # Its --set, not --smoke-test, made the batch sizes: --smoke-test alone says the same.
    assert resume("--smoke-test").space == space
    with pytest.raises(UserError) as caught:
        resume("--smoke-test", "--set", "size=teacher")
    assert "otherwise: --set size=teacher: teacher (the study's: student)." in str(caught.value)
    assert "--smoke-test:" not in str(caught.value)
    # A study.json from before smoke_test was recorded: judged by the space, as before.
    saved = config.to_json()
    del saved["smoke_test"]
    (study_dir / "study.json").write_text(json.dumps(saved))
    assert resume().smoke_test is None
    with pytest.raises(UserError, match="--smoke-test: the study was not started with it"):
        resume("--smoke-test")  # its batch sizes are not --smoke-test's


def _complete_trials(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db) as connection:
            (count,) = connection.execute(
                "SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
            ).fetchone()
    except sqlite3.Error:
        return 0
    return int(count)


def _sum_of_states(counts: dict[str, int]) -> int:
    states = ("complete", "pruned_oom", "stopped_early", "failed", "interrupted")
    return sum(counts[f"num_{state}"] for state in states)


def _trial_id(run_dir: Path) -> str:
    return run_dir.name.split("-")[1]  # trial-<id>-<time>-<random>


def test_killed_driver_resumes_to_exactly_the_requested_trials(tmp_path: Path) -> None:
    studies = tmp_path / "studies"
    study = studies / "killed"
    env = {**os.environ, "BATCH_HPO_CACHE": str(tmp_path / "cache")}
    args = ["--space", "normal", "--study-dir", str(studies), "--study-name", "killed"]
    log = (tmp_path / "first.log").open("w")
    first = [*args, "--smoke-test", "--epochs", "1", "--num-samples", str(NUM_SAMPLES)]
    driver = subprocess.Popen(
        [sys.executable, "-m", "hpo.run", *first],
        stdout=log,
        stderr=subprocess.STDOUT,
        # Ray saves the experiment's state every 10 s at most; here, after its first save, only
        # when a trial's first report asks for it (`TrialReports`). Without that, a trial that
        # started and finished between two saves was unknown to the resume: run again, counted
        # twice by Optuna and MLflow, and left out of the summary.
        env={**env, "TUNE_GLOBAL_CHECKPOINT_S": "3600"},
        start_new_session=True,  # its own process group: the local Ray instance dies with it
    )
    deadline = time.monotonic() + 300
    try:
        # Kill it once three trials have finished: Ray's first save, as the study starts, knew
        # the first two (two at a time), not the third.
        while time.monotonic() < deadline and driver.poll() is None:
            if _complete_trials(study / "optuna.db") >= 3:
                break
            time.sleep(0.2)
        assert driver.poll() is None, "the study ended before it could be killed"
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        log.close()
    finished_before = {
        _trial_id(run.parent): run.parent for run in (study / "runs").glob("*/model.pt")
    }
    assert len(finished_before) < NUM_SAMPLES

    resumed = _hpo_run(*args, "--resume", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)  # stdout holds the summary and nothing else
    assert summary["num_trials"] == NUM_SAMPLES
    assert summary["num_complete"] + summary["num_pruned_oom"] == NUM_SAMPLES
    assert len({row["trial_id"] for row in summary["trials"]}) == NUM_SAMPLES
    rows = {row["trial_id"]: row for row in summary["trials"]}
    for trial_id, run_dir in finished_before.items():
        # Known to Ray's saved state: kept, read back, not run again.
        assert rows[trial_id]["run_dir"] == str(run_dir), (trial_id, sorted(rows))
        assert len(list((study / "runs").glob(f"trial-{trial_id}-*"))) == 1
    assert len(finished_before) >= 3
    trials = optuna.load_study(study_name="killed", storage=f"sqlite:///{study / 'optuna.db'}")
    done = [t for t in trials.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == NUM_SAMPLES
    for trial in trials.trials:
        if trial not in done:  # asked for by the killed driver, never to be finished
            assert trial.state == TrialState.FAIL and trial.user_attrs["interrupted"] is True
    assert json.loads((study / "summary.json").read_text()) == summary
    # "(N finished)" counts the study's trials, not the resumed driver's (it began at 1 again).
    finished = [int(n) for n in re.findall(r"\((\d+) finished\)", resumed.stderr)]
    assert finished == list(range(NUM_SAMPLES - len(finished) + 1, NUM_SAMPLES + 1)), finished
    # One run folder per trial of the summary: none left by a trial that never ran again.
    assert sorted(_trial_id(p) for p in (study / "runs").glob("trial-*")) == sorted(rows)
    # MLflow: one parent run, finished, and a finished child run per trial of the summary, and
    # none besides (a trial never to run again was a phantom: hpo.report counted it interrupted).
    client = MlflowClient(summary["mlflow"]["tracking_uri"])
    parent = client.get_run(summary["mlflow"]["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert sorted(c.data.tags["hpo.trial_id"] for c in children) == sorted(rows)
    assert {c.info.status for c in children} <= {"FINISHED", "KILLED"}
    report = build_report(client, "normal", study="killed")
    counts = ("num_trials", "num_complete", "num_pruned_oom", "num_interrupted")
    assert {key: report[key] for key in counts} == {key: summary[key] for key in counts}


def test_sigterm_stops_the_study_as_ctrl_c_does_and_resume_goes_on_from_it(
    tmp_path: Path,
) -> None:
    # SLURM's time limit, scancel and preemption send SIGTERM. Ray's driver aborted on it
    # (rc 134): no summary, no last experiment state, MLflow runs left running.
    studies = tmp_path / "studies"
    study = studies / "termed"
    env = {**os.environ, "BATCH_HPO_CACHE": str(tmp_path / "cache")}
    args = ["--space", "normal", "--study-dir", str(studies), "--study-name", "termed"]
    with (tmp_path / "driver.log").open("w") as log:
        driver = subprocess.Popen(
            [sys.executable, "-m", "hpo.run", *args, "--smoke-test", "--epochs", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while _complete_trials(study / "optuna.db") < 1:
                assert time.monotonic() < deadline and driver.poll() is None, "no trial ended"
                time.sleep(0.2)
            driver.send_signal(signal.SIGTERM)  # the driver alone: Ray's processes live on
            returncode = driver.wait(timeout=120)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
    output = (tmp_path / "driver.log").read_text()
    assert returncode == 130, output[-3000:]
    assert "SIGTERM received" in output and "--study-name termed --resume" in output
    assert "Tuner.restore" not in output  # Ray's own hint: this study resumes with hpo.run
    assert "RAY_AUTH_MODE=disabled to opt out" not in output  # the dashboard line says it
    summary = json.loads((study / "summary.json").read_text())
    assert 1 <= summary["num_complete"] < 4
    parent = MlflowClient(f"sqlite:///{studies / 'mlflow.db'}").get_run(
        summary["mlflow"]["parent_run_id"]
    )
    assert parent.info.status == "KILLED"
    # Every trial listed is counted, the interrupted ones too: the counts add up (num_trials
    # left them out, "1 trials: 1 complete, ..., 1 interrupted"), here and on the parent run.
    assert summary["num_trials"] == len(summary["trials"]) == _sum_of_states(summary)
    assert parent.data.metrics["num_trials"] == summary["num_trials"]
    ended = summary["num_trials"] - summary["num_interrupted"]
    stopped = {p for p in (study / "runs").glob("trial-*") if not (p / "metrics.json").exists()}

    resumed = _hpo_run(*args, "--resume", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = json.loads(resumed.stdout)
    assert final["num_trials"] == final["num_complete"] + final["num_pruned_oom"] == 4
    # "(N finished)" counts the study's trials, those that ended before the resume included
    # (it began at 1 again).
    finished = [int(n) for n in re.findall(r"\((\d+) finished\)", resumed.stderr)]
    assert finished == list(range(ended + 1, 5)), resumed.stderr[-3000:]
    # A trial run again keeps one run folder: the stopped attempt's is gone, not left beside.
    assert not any(folder.exists() for folder in stopped), sorted(stopped)
    for row in final["trials"]:
        assert [str(p) for p in (study / "runs").glob(f"trial-{row['trial_id']}-*")] == [
            row["run_dir"]
        ]


def test_factor_store_option_is_resolved_into_the_study_and_kept_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo.run import _new_config, _resumed_config, build_parser

    monkeypatch.chdir(tmp_path)
    study_dir = tmp_path / "studies" / "s"
    parse = build_parser().parse_args
    default = _new_config(study_dir, parse(["--space", "normal"]))
    assert default.factor_store_path == Path(os.environ["BATCH_HPO_CACHE"]) / "safety_factors.json"
    config = _new_config(study_dir, parse(["--space", "normal", "--factor-store", "f.json"]))
    assert config.factor_store_path == tmp_path / "f.json"  # absolute: workers run elsewhere
    study_dir.mkdir(parents=True)
    (study_dir / "study.json").write_text(json.dumps(config.to_json()))
    resumed = _resumed_config(study_dir, parse(["--space", "normal", "--resume"]))
    assert resumed.factor_store_path == tmp_path / "f.json"
    moved = _resumed_config(
        study_dir, parse(["--space", "normal", "--resume", "--factor-store", "g.json"])
    )
    assert moved.factor_store_path == tmp_path / "g.json"


def test_resume_refuses_options_that_contradict_the_study_and_accepts_the_same_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpo.run import (
        _RESUME_OPTIONS,
        _check_resume_options,
        _given_options,
        _new_config,
        _resumed_config,
        _setting,
        build_parser,
    )
    from trainables.errors import UserError

    monkeypatch.chdir(tmp_path)
    study_dir = tmp_path / "studies" / "s"
    first = ["--space", "normal", "--smoke-test", "--num-samples", "4", "--epochs", "3"]
    first += ["--data-seed", "2", "--study-dir", "studies", "--study-name", "s"]
    config = _new_config(study_dir, build_parser().parse_args(first))
    study_dir.mkdir(parents=True)
    (study_dir / "study.json").write_text(json.dumps(config.to_json()))

    def resume(*extra: str, name: str = "s") -> StudyConfig:
        argv = ["--space", "normal", "--study-dir", "studies", "--study-name", name, "--resume"]
        args = build_parser().parse_args([*argv, *extra])
        resumed = _resumed_config(study_dir.parent / name, args)
        given = _given_options([*argv, *extra])
        _check_resume_options(resumed, study_dir.parent / name, args, given)
        return resumed

    resume()
    resume(*first[2:])  # the first command again, as a requeued SLURM job passes it
    resume("--smoke-test")  # its --epochs 3 left out: not a different space
    # Where graphs are cached may change: the same graphs.
    moved = resume("--cache-dir", "elsewhere").source
    assert (moved.use_cache, moved.cache_dir) == (True, tmp_path / "elsewhere")
    assert resume("--no-cache").source.use_cache is False
    resume("--mlflow-uri", f"sqlite:///{tmp_path / 'studies' / 'mlflow.db'}")  # the same store
    for extra, message in [
        (["--num-samples", "10"], "--num-samples: 10 (the study's: 4)"),
        (["--epochs", "5", "--smoke-test"], "--epochs: 5 (the study's: 3)"),
        (["--data-seed", "3"], "--data-seed: 3 (the study's: 2)"),
        (["--smoke-test", "--epochs", "3", "--max-concurrent", "1"], "--max-concurrent: 1"),
        (["--mlflow-uri", "sqlite:///other.db"], "study s is tracked in sqlite:///"),
    ]:
        with pytest.raises(UserError, match=re.escape(message)):
            resume(*extra)
    full = _new_config(study_dir.parent / "full", build_parser().parse_args(["--space", "normal"]))
    (study_dir.parent / "full").mkdir()
    (study_dir.parent / "full" / "study.json").write_text(json.dumps(full.to_json()))
    with pytest.raises(UserError, match="--smoke-test: the study was not started with it"):
        resume("--smoke-test", name="full")
    # Every option is either one --resume may change, or a setting it compares.
    dests = {a.dest for a in build_parser()._actions if a.dest != "help"}
    for dest in dests - _RESUME_OPTIONS:
        _setting(config, dest)


def _edited(saved: dict[str, Any], key: str, value: object) -> dict[str, Any]:
    """`saved` with its `key` (a path: `source.window`) set to `value`, or removed for `...`."""
    edited = json.loads(json.dumps(saved))
    *parents, last = key.split(".")
    holder = edited
    for parent in parents:
        holder = holder[parent]
    if value is ...:
        del holder[last]
    else:
        holder[last] = value
    return edited


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # They named the option (--num-samples), or the space's field, not the file's key.
        ("num_samples", 0, "num_samples must be an integer >= 1, got 0"),
        ("seed", -1, "seed must be an integer >= 0, got -1"),
        ("cpus_per_trial", 0, "cpus_per_trial must be > 0"),
        ("source.window", 1, "source.window must be an integer >= 2, got 1"),
        ("source.seed", -1, "source.seed must be an integer >= 0, got -1"),
        ("space.epochs", 0, "space.epochs must be an integer >= 1, got 0"),
        ("space.batch_size", {"low": 0, "high": 8, "log": False}, "space.batch_size: low must"),
        # A TypeError's text: "'>' not supported between instances of 'str' and 'int'".
        ("cpus_per_trial", "1", "cpus_per_trial: Input should be a valid number (got '1')"),
        ("source.num_messages", "many", "source.num_messages: Input should be a valid integer"),
        ("num_samples", "8", "num_samples: Input should be a valid integer (got '8')"),
        ("space.batch_size", {"low": 8}, "space.batch_size.high is missing"),
        # Taken as they were: a string for a boolean, a number for a URI.
        ("tune_batch_size", "no", "tune_batch_size: Input should be a valid boolean (got 'no')"),
        ("mlflow_uri", 3, "mlflow_uri: Input should be a valid string (got 3)"),
        # A missing key named without its parent ("no 'data_dir'"), or taken as its default.
        ("source.data_dir", ..., "missing key source.data_dir"),
        ("num_samples", ..., "missing key num_samples"),
        # "SearchSpace.__init__() got an unexpected keyword argument 'batch'".
        ("space.batch", 8, "space.batch is not a setting of a study"),
    ],
)
def test_resume_names_the_study_file_and_the_key_of_a_bad_setting(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    from hpo.run import _new_config, _resumed_config, build_parser
    from trainables.errors import UserError

    study_dir = tmp_path / "s"
    parse = build_parser().parse_args
    saved = _new_config(study_dir, parse(["--space", "normal"])).to_json()
    study_dir.mkdir()
    (study_dir / "study.json").write_text(json.dumps(_edited(saved, key, value)))
    with pytest.raises(UserError) as raised:
        _resumed_config(study_dir, parse(["--space", "normal", "--resume"]))
    assert str(raised.value).startswith(f"--resume: {study_dir / 'study.json'}: {message}")
    assert str(raised.value).endswith("; fix the file, or start a new study")


@pytest.mark.parametrize(
    ("store", "settings", "message"),
    [
        ('{"format": "batch-hpo safety-factor store", "entr', None, "store.json: not valid JSON"),
        (None, "[1, 2]", "study.json is not a study's settings (no space object)"),
        (None, '{"space": {"name": "normal"}}', "study.json: missing keys source, num_samples"),
    ],
)
def test_hpo_run_rejects_a_damaged_store_or_study_before_starting(
    tmp_path: Path, store: str | None, settings: str | None, message: str
) -> None:
    studies = tmp_path / "studies"
    args = ["--space", "normal", "--smoke-test", "--study-dir", str(studies)]
    if store is not None:
        (tmp_path / "store.json").write_text(store)
        args += ["--factor-store", str(tmp_path / "store.json")]
    if settings is not None:
        (studies / "s").mkdir(parents=True)
        (studies / "s" / "study.json").write_text(settings)
        args += ["--study-name", "s", "--resume"]
    result = _hpo_run(*args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    # Nothing was started: no new study, no MLflow store, the files as they were.
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["store.json"] if store is not None else ["studies", "s", "study.json"]
    )


def test_hpo_run_rejects_data_its_mode_cannot_train_on_before_any_trial(tmp_path: Path) -> None:
    from tests.trainables.data.helpers import ctt_rows, write_csv

    folder = tmp_path / "data" / "clean" / "train_01_attack_free"
    folder.mkdir(parents=True)
    write_csv(folder / "a.csv", ctt_rows(2000, seed=1))
    studies = tmp_path / "studies"
    result = _hpo_run(
        *("--space", "normal", "--smoke-test", "--study-dir", str(studies)),
        *("--data-dir", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache")),
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--mode normal is supervised but the training split of clean has no attack graphs" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and " trial " not in result.stderr
    assert not list(studies.glob("*/study.json"))  # no study was started


def test_resume_without_a_name_takes_the_spaces_latest_study_whatever_its_name(
    tmp_path: Path,
) -> None:
    # Studies named by --study-name were passed over: --resume took an older, finished study.
    import argparse
    import os

    from hpo.run import _study_dir

    def study(name: str, space: str, mtime: float) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "study.json").write_text(json.dumps({"space": {"name": space}}))
        os.utime(folder, (mtime, mtime))
        return folder

    study("normal-20261124-140000", "normal", 1_000)
    named = study("resume-test", "normal", 2_000)
    study("kd-latest", "kd", 3_000)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "study.json").write_text("{not json")
    args = argparse.Namespace(study_dir=tmp_path, study_name=None, resume=True, space="normal")
    assert _study_dir(args) == named
    assert (
        _study_dir(argparse.Namespace(**{**vars(args), "space": "kd"})) == tmp_path / "kd-latest"
    )


def test_a_study_needs_both_classes_in_validation(tmp_path: Path) -> None:
    # An autoencoder study of attack-free captures trains, but scored val_auroc 0.0 in every
    # trial (AUROC of one class), with a torchmetrics warning each time.
    from hpo.prepare import prepare_data
    from tests.trainables.data.helpers import ctt_rows, write_csv
    from trainables.data.source import GraphSource
    from trainables.errors import UserError

    folder = tmp_path / "data" / "clean" / "train_01_attack_free"
    folder.mkdir(parents=True)
    write_csv(folder / "a.csv", ctt_rows(2000, seed=1))
    source = GraphSource(data_dir=tmp_path / "data", dataset="clean", use_cache=False)
    with pytest.raises(UserError, match=r"validation split of clean \(\d+ graphs\) holds normal"):
        prepare_data(source, seed=0, mode="autoencoder")
