"""Studies on a real local Ray instance, a real Optuna SQLite store and real memory budgets."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from ray import tune

from hpo.searcher import OOM_STAGES
from hpo.study import StudyConfig, run_study
from hpo.study.run import _driver_lock
from hpo.summary import build_summary, format_table, summarise, trial_row
from search_spaces import get_space
from search_spaces.ranges import IntRange
from trainables.batching.adaptive_factor import SafetyFactorKey, SafetyFactorStore
from trainables.batching.safety_factor import apply_safety_factor
from trainables.data.source import GraphSource
from trainables.errors import UserError

# With 30k synthetic messages a student GAT trains at batch 64 within 24 MiB of CPU memory and
# runs out of it from about 96 graphs per batch (measured: 64 fits, 96-1024 do not).
OOM_BUDGET = 24 * 2**20
FITS, DOES_NOT_FIT = 16, 256
NUM_SAMPLES = 6


@pytest.fixture(scope="module")
def oom_study(
    ray_local: None, smoke_source: GraphSource, tmp_path_factory: pytest.TempPathFactory
) -> tuple[StudyConfig, dict[str, Any]]:
    space = get_space("normal").with_overrides(
        size="student",
        epochs=1,
        batch_size=IntRange(8, 1024, log=True),
        schedule_type=("none",),
    )
    root = tmp_path_factory.mktemp("oom-study")
    config = StudyConfig(
        space=space,
        study_dir=root / "study",
        source=smoke_source,
        num_samples=NUM_SAMPLES,
        max_concurrent=2,
        memory_budget=OOM_BUDGET,
        tune_batch_size=False,
        factor_store_path=root / "factors.json",
        points_to_evaluate=({"batch_size": FITS}, {"batch_size": DOES_NOT_FIT}),
    )
    return config, run_study(config)


def _optuna_trials(config: StudyConfig) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=config.name, storage=config.paths.optuna_url)
    return study.trials


def _params(row: dict[str, Any], config: StudyConfig) -> dict[str, Any]:
    fixed = config.space.fixed_params()
    return {k: v for k, v in row["config"].items() if k not in fixed}


def test_oom_study_ends_with_pruned_oom_trials_and_no_errors(
    oom_study: tuple[StudyConfig, dict[str, Any]],
) -> None:
    config, summary = oom_study
    assert summary["num_trials"] == NUM_SAMPLES
    assert summary["num_failed"] == 0
    assert summary["num_pruned_oom"] >= 1 and summary["num_complete"] >= 1
    states = {row["config"]["batch_size"]: row["state"] for row in summary["trials"]}
    assert states[FITS] == "complete"
    assert states[DOES_NOT_FIT] == "pruned-oom"
    for row in summary["trials"]:
        if row["state"] == "pruned-oom":
            assert row["oom_stage"] in OOM_STAGES
            assert row["metric"] is None
            # No tuner: the trial ran at the batch size it was given.
            assert row["train_batch_size"] == row["config"]["batch_size"]
        else:
            assert row["oom_stage"] is None
            assert 0.0 <= row["metric"] <= 1.0
            assert (Path(row["run_dir"]) / "model.pt").is_file()
    analysis = tune.ExperimentAnalysis(str(config.paths.experiment))
    assert {trial.status for trial in analysis.trials} == {"TERMINATED"}
    assert json.loads(config.paths.summary.read_text()) == summary


def test_oom_study_prunes_exactly_the_oom_trials_in_optuna(
    oom_study: tuple[StudyConfig, dict[str, Any]],
) -> None:
    config, summary = oom_study
    trials = _optuna_trials(config)
    assert len(trials) == NUM_SAMPLES
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(pruned) + len(complete) == NUM_SAMPLES
    oom_rows = [r for r in summary["trials"] if r["state"] == "pruned-oom"]
    assert sorted(json.dumps(_params(r, config), sort_keys=True) for r in oom_rows) == sorted(
        json.dumps(t.params, sort_keys=True) for t in pruned
    )
    for trial in pruned:
        assert trial.user_attrs["oom"] is True
        assert trial.user_attrs["oom_stage"] in OOM_STAGES
        assert trial.user_attrs["train_batch_size"] == trial.params["batch_size"]


def test_oom_study_best_trial_is_the_best_complete_one(
    oom_study: tuple[StudyConfig, dict[str, Any]],
) -> None:
    config, summary = oom_study
    complete = [r for r in summary["trials"] if r["state"] == "complete"]
    best = max(complete, key=lambda r: r["metric"])
    assert summary["best_value"] == best["metric"]
    assert summary["best_config"] == best["config"]
    study = optuna.load_study(study_name=config.name, storage=config.paths.optuna_url)
    assert study.best_value == pytest.approx(best["metric"])


def test_oom_study_table_lists_every_trial_and_where_results_are(
    oom_study: tuple[StudyConfig, dict[str, Any]],
) -> None:
    config, summary = oom_study
    table = format_table(summary)
    for row in summary["trials"]:
        assert row["trial_id"] in table
    assert f"{summary['num_pruned_oom']} pruned (out of memory)" in table
    assert str(config.paths.summary.resolve()) in table


def test_existing_study_directory_is_not_overwritten(
    oom_study: tuple[StudyConfig, dict[str, Any]],
) -> None:
    config, _ = oom_study
    before = config.paths.settings.read_bytes()
    with pytest.raises(UserError, match="already holds a study; pass --resume"):
        run_study(config)
    assert config.paths.settings.read_bytes() == before


def test_study_config_round_trips_through_study_json(tmp_path: Path) -> None:
    config = StudyConfig(
        space=get_space("kd").smoke().with_overrides(epochs=3),
        study_dir=tmp_path / "s",
        source=GraphSource(num_messages=1000, cache_dir=tmp_path / "cache"),
        num_samples=5,
        memory_budget=2**30,
        scheduler="asha",
        points_to_evaluate=({"batch_size": 8},),
        factor_store_path=tmp_path / "f.json",
    )
    saved = json.loads(json.dumps(config.to_json()))
    assert StudyConfig.from_json(saved, study_dir=config.study_dir) == config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_samples": 0}, "--num-samples must be an integer >= 1, got 0"),
        ({"max_concurrent": 0}, "--max-concurrent must be an integer >= 1"),
        ({"cpus_per_trial": 0}, "--cpus-per-trial must be > 0"),
        ({"gpus_per_trial": -1}, "--gpus-per-trial must be a number >= 0"),
        # Ray: "GPU resource quantities >1 must be whole numbers", once a trial starts.
        ({"gpus_per_trial": 1.5}, "--gpus-per-trial 1.5: above 1 it must be a whole number"),
        ({"scheduler": "pbt"}, "--scheduler must be one of none, asha"),
        ({"memory_budget": 0}, "--memory-budget must be > 0"),
        # A traceback from NumPy's split, in hpo.run and hpo.estimate alike.
        ({"seed": -1}, "--seed must be an integer >= 0, got -1"),
    ],
)
def test_study_config_rejects_bad_settings(
    changes: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        StudyConfig(space=get_space("normal"), study_dir=tmp_path, **changes)


def test_trial_rows_classify_complete_oom_failed_and_interrupted() -> None:
    config = {"batch_size": 64, "safety_factor": 0.5}
    done = trial_row(
        "a", config, {"val_f1": 0.9, "train_batch_size": 32, "done": True}, None, "val_f1"
    )
    oom = trial_row(
        "b",
        config,
        {"val_f1": -math.inf, "oom": True, "oom_stage": "validation", "train_batch_size": 64},
        None,
        "val_f1",
    )
    failed = trial_row("c", config, {"val_f1": 0.4}, RuntimeError("boom\nlast line"), "val_f1")
    assert (done["state"], done["metric"], done["train_batch_size"]) == ("complete", 0.9, 32)
    assert (oom["state"], oom["oom_stage"], oom["metric"]) == ("pruned-oom", "validation", None)
    assert (failed["state"], failed["metric"], failed["error"]) == ("failed", None, "last line")
    # Stopped mid-run (an epoch reported, not done) or before it started (no result at all).
    running = trial_row("d", config, {"val_f1": 0.7, "epoch": 1}, None, "val_f1")
    pending = trial_row("e", config, {}, None, "val_f1")
    assert (running["state"], running["metric"]) == ("interrupted", None)
    assert pending["state"] == "interrupted"
    # Stopped by ASHA after an epoch: ended (done), but with no test metrics and no model.
    stopped = {"val_f1": 0.95, "epoch": 1, "trained_to_end": False, "done": True}
    assert trial_row("f", config, stopped, None, "val_f1")["state"] == "stopped-early"
    assert trial_row("f", config, stopped, None, "val_f1")["metric"] is None


def test_summary_picks_the_best_by_direction(tmp_path: Path) -> None:
    rows = [
        trial_row("a", {"x": 1}, {"val_loss": 0.5, "done": True}, None, "val_loss"),
        trial_row("b", {"x": 2}, {"val_loss": 0.2, "done": True}, None, "val_loss"),
        trial_row("c", {"x": 3}, {"val_loss": -math.inf, "oom": True}, None, "val_loss"),
        trial_row("d", {"x": 4}, {"val_loss": 0.1, "epoch": 1}, None, "val_loss"),
        trial_row(
            "e",
            {"x": 5},
            {"val_loss": 0.05, "trained_to_end": False, "done": True},
            None,
            "val_loss",
        ),
    ]
    space = get_space("normal").with_overrides(metric="val_loss", direction="min")
    summary = build_summary(StudyConfig(space=space, study_dir=tmp_path), rows)
    # Neither the stopped trial's one-epoch 0.05 nor the interrupted one's 0.1 is a result.
    assert (summary["best_trial"], summary["best_value"]) == ("b", 0.2)
    assert (summary["num_complete"], summary["num_pruned_oom"]) == (2, 1)
    assert (summary["num_stopped_early"], summary["num_interrupted"]) == (1, 1)
    # Every trial listed, the interrupted one too: the counts by state add up to it (it said 4
    # trials beside 2 + 1 + 1 + 1 of them).
    assert summary["num_trials"] == len(summary["trials"]) == 5
    assert summary["num_interrupted"] == 1  # it has not ended
    assert (
        "5 trials: 2 complete, 1 pruned (out of memory), 1 stopped early by the scheduler,"
        " 0 failed, 1 interrupted"
    ) in format_table(summary)


def test_new_study_is_warm_started_from_the_factor_store_and_runs_under_asha(
    ray_local: None, smoke_source: GraphSource, tmp_path: Path
) -> None:
    space = get_space("normal").with_overrides(size="student", epochs=2)
    store = SafetyFactorStore(tmp_path / "factors.json")
    key = SafetyFactorKey("synthetic", "normal", "student", "cpu", 0)  # the default budget
    for _ in range(2):
        store.record(key, factor=0.6, peak_fraction=0.5, oom=False)
    recommended = store.recommend(key, default=0.9)
    config = StudyConfig(
        space=space,
        study_dir=tmp_path / "study",
        source=smoke_source,
        num_samples=3,
        scheduler="asha",
        factor_store_path=store.path,
    )
    summary = run_study(config)
    assert summary["num_trials"] == 3 and summary["num_failed"] == 0
    first = min(_optuna_trials(config), key=lambda t: t.number)
    assert first.params["safety_factor"] == pytest.approx(recommended)
    assert first.params["schedule_type"] == "none"
    assert first.params["batch_size"] == space.batch_size.high
    for row in summary["trials"]:
        assert row["state"] == "complete" and 1 <= row["epochs"] <= space.epochs
    # The driver fixed one default budget for the study, so its 3 trials (2 at a time, each
    # seeing different free memory) share one frontier-memo key: the tuner ran exactly once.
    memo = json.loads((config.study_dir / "batch_size_frontier.json").read_text())
    assert len(memo["entries"]) == 1, memo
    runs = [
        json.loads((Path(r["run_dir"]) / "metrics.json").read_text()) for r in summary["trials"]
    ]
    assert sorted(run["memo_hit"] for run in runs) == [False, True, True]
    assert len({run["memory_budget_bytes"] for run in runs}) == 1
    # MLflow holds that budget, on the study's run and every trial's (it used to say "default").
    client = MlflowClient(config.tracking_uri)
    tagged = client.search_runs(
        [client.get_experiment_by_name("hpo-normal").experiment_id],  # type: ignore[union-attr]
        f"tags.`hpo.study` = '{config.name}'",
    )
    assert len(tagged) == 4  # the study and its 3 trials
    assert {run.data.tags["memory_budget"] for run in tagged} == {
        str(runs[0]["memory_budget_bytes"])
    }
    # The outcomes went back to the store where the factor set the batch: the warm start's
    # (it asks for the top of the range), and any other trial that asked for more than the
    # tuned maximum x its factor. A trial that kept a smaller size says nothing about it.
    bound = [
        run
        for run in runs
        if max(run["batch_sizes_per_epoch"])
        == apply_safety_factor(run["tuned_max_batch_size"], run["safety_factor"])
    ]
    assert any(run["safety_factor"] == pytest.approx(recommended) for run in bound)
    assert store.num_records(key) == 2 + len(bound)


def test_oom_study_is_tracked_in_mlflow_as_a_parent_run_with_a_child_per_trial(
    oom_study: tuple[StudyConfig, dict[str, Any]],
) -> None:
    config, summary = oom_study
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name("hpo-normal")
    assert experiment is not None
    [parent] = client.search_runs(
        [experiment.experiment_id],
        f"tags.`hpo.study` = '{config.name}' and tags.`hpo.role` = 'study'",
    )
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["hpo.space"] == "normal"
    assert parent.data.tags["memory_budget"] == str(OOM_BUDGET)
    assert parent.data.metrics["num_pruned_oom"] == summary["num_pruned_oom"]
    assert summary["mlflow"]["parent_run_id"] == parent.info.run_id
    parent_files = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert "summary.json" in parent_files and "plots" in parent_files
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    rows = {row["trial_id"]: row for row in summary["trials"]}
    assert {c.data.tags["hpo.trial_id"] for c in children} == set(rows)
    for child in children:
        row = rows[child.data.tags["hpo.trial_id"]]
        tags, params = child.data.tags, child.data.params
        assert tags["state"] == row["state"]
        assert tags["oom"] == ("true" if row["state"] == "pruned-oom" else "false")
        assert tags["oom_stage"] == (row["oom_stage"] or "")
        for key in ("mode", "dataset", "model_size", "seed", "device_type", "memory_budget"):
            assert key in tags
        assert params["batch_size"] == str(row["config"]["batch_size"])
        assert params["applied_train_batch_size"] == str(row["train_batch_size"])
        if row["state"] == "complete":
            assert child.info.status == "FINISHED"
            assert child.data.metrics["val_f1"] == pytest.approx(row["metric"])
            history = client.get_metric_history(child.info.run_id, "train_batch_size")
            steps = sorted(m.step for m in history)
            assert steps == list(range(1, len(steps) + 1))  # each epoch once, from 1
            model = {f.path for f in client.list_artifacts(child.info.run_id, "model")}
            assert model == {"model/model.pt", "model/config.json"}
        else:
            assert child.info.status == "KILLED"
    registered = summary["mlflow"]["registered_model"]
    assert registered["name"] == "normal-synthetic"
    version = client.get_model_version(registered["name"], registered["version"])
    best_child = next(c for c in children if c.data.tags["hpo.trial_id"] == summary["best_trial"])
    assert version.run_id == best_child.info.run_id
    assert version.description is not None
    assert f"val_f1={summary['best_value']:.4f}" in version.description


def test_hpo_report_reads_the_same_study_back_from_mlflow(
    oom_study: tuple[StudyConfig, dict[str, Any]],
) -> None:
    config, summary = oom_study
    args = ["--space", "normal", "--study", config.name, "--mlflow-uri", config.tracking_uri]
    result = subprocess.run(
        [sys.executable, "-m", "hpo.report", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert (report["space"], report["study"]) == ("normal", config.name)
    assert report["num_trials"] == summary["num_trials"]
    assert report["num_pruned_oom"] == summary["num_pruned_oom"]
    stages = [r["oom_stage"] for r in summary["trials"] if r["state"] == "pruned-oom"]
    assert report["oom_stages"] == {stage: stages.count(stage) for stage in set(stages)}
    assert report["best"]["trial_id"] == summary["best_trial"]
    assert report["best"]["metric"] == pytest.approx(summary["best_value"])
    for key, value in summary["best_config"].items():
        assert report["best"]["config"][key] == value
    leaders = [row["trial_id"] for row in report["leaderboard"]]
    complete = sorted(
        (r for r in summary["trials"] if r["state"] == "complete"), key=lambda r: -r["metric"]
    )
    assert leaders[0] == complete[0]["trial_id"] and len(leaders) == min(5, len(complete))


def test_a_study_another_driver_is_running_is_refused_and_left_as_it_is(
    oom_study: tuple[StudyConfig, dict[str, Any]],
) -> None:
    config, _ = oom_study
    config = dataclasses.replace(config, study_dir=config.study_dir.resolve())
    before = {p: p.read_bytes() for p in (config.paths.settings, config.paths.summary)}
    refused = pytest.raises(UserError, match=rf"another driver \(pid {os.getpid()} on .*\) is")
    with _driver_lock(config), refused:  # as the first driver holds it while its trials run
        run_study(config, resume=True)
    assert {p: p.read_bytes() for p in before} == before
    with _driver_lock(config):  # released: the next driver gets it
        pass


def test_a_new_study_refused_for_its_resources_leaves_no_directory(
    ray_local: None, smoke_source: GraphSource, tmp_path: Path
) -> None:
    config = StudyConfig(
        space=get_space("normal").smoke(),
        study_dir=tmp_path / "studies" / "s",
        source=smoke_source,
        gpus_per_trial=1,
        factor_store_path=tmp_path / "factors.json",
    )
    with pytest.raises(UserError, match="--gpus-per-trial 1: the Ray cluster has 0 GPUs"):
        run_study(config)
    assert not config.study_dir.exists()


def test_a_trials_id_is_its_ray_trials_and_names_its_folders(
    oom_study: tuple[StudyConfig, dict[str, Any]],
) -> None:
    config, summary = oom_study
    folders = sorted(p.name for p in config.paths.experiment.glob("train_trial_*") if p.is_dir())
    ids = sorted(row["trial_id"] for row in summary["trials"])
    assert sorted(folder.split("_")[2] for folder in folders) == ids  # train_trial_<id>_...
    for row in summary["trials"]:
        # The trainable names its run folder from Ray's context: trial-<id>-<time>-<random>.
        assert Path(row["run_dir"]).name.split("-")[1] == row["trial_id"]


def test_a_budget_no_batch_fits_prunes_every_trial_in_the_tuner_with_no_size_tried(
    ray_local: None, smoke_source: GraphSource, tmp_path: Path
) -> None:
    config = StudyConfig(
        space=get_space("normal").smoke().with_overrides(epochs=1),
        study_dir=tmp_path / "study",
        source=smoke_source,
        num_samples=2,
        memory_budget=2 << 20,  # 2 MiB: not one graph trains
        factor_store_path=tmp_path / "factors.json",
    )
    summary = run_study(config)
    assert summary["num_pruned_oom"] == 2
    for row in summary["trials"]:
        # The searched batch size was never tried: the tuner stopped before any size applied.
        assert (row["oom_stage"], row["train_batch_size"], row["eval_batch_size"]) == (
            "tuner",
            None,
            None,
        )
    for trial in _optuna_trials(config):
        assert trial.state == TrialState.PRUNED
        assert trial.user_attrs == {
            "oom": True,
            "oom_stage": "tuner",
            "train_batch_size": None,
            "eval_batch_size": None,
        }


def test_the_driver_lock_names_a_folder_it_cannot_make_and_warns_where_locks_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    space = get_space("normal")
    with (
        pytest.raises(UserError, match=r"^--study-dir: cannot make the study's folder"),
        _driver_lock(StudyConfig(space=space, study_dir=Path("/proc/no-such/s"))),
    ):
        pass

    # Some NFS or Lustre mounts have no locks: the study runs, and says it is unguarded.
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    config = StudyConfig(space=space, study_dir=tmp_path / "s")
    with caplog.at_level(logging.WARNING, logger="hpo.run"), _driver_lock(config):
        assert config.paths.lock.is_file()
    assert "nothing stops a second driver on this study" in caplog.text


class _StopOnceTold(tune.Stopper):
    """Stops the experiment once the file `stop` exists, as Ctrl-C stops a study."""

    def __init__(self, stop: Path) -> None:
        self.stop = stop

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.stop.exists()


def _report_then_stop_the_study(config: dict[str, Any]) -> None:
    """The first trial reports its end; its function ends when Ray resets its worker for the
    second trial (Ray waits for it), and then stops the study, before the second reports."""
    if config["batch_size"] != FITS:
        time.sleep(30)  # never reached: the study stops while Ray hands the worker over
        return
    try:
        tune.report({"val_f1": 0.5, "epoch": 1, "done": True})
    finally:  # Ray ends a reported trial's function with SystemExit in `report`
        Path(config["stop"]).touch()
        time.sleep(1)


def test_a_trial_stopped_before_its_first_report_on_a_reused_worker_keeps_its_config(
    ray_local: None, tmp_path: Path
) -> None:
    # The second trial's last result was what its worker filled in when Ray handed it over,
    # before resetting it: the first trial's config (and id), which its summary row showed.
    stop = tmp_path / "stop"
    tuner = tune.Tuner(
        _report_then_stop_the_study,
        param_space={"batch_size": tune.choice([FITS, DOES_NOT_FIT]), "stop": str(stop)},
        tune_config=tune.TuneConfig(
            num_samples=2,
            search_alg=tune.search.BasicVariantGenerator(
                points_to_evaluate=[{"batch_size": FITS}, {"batch_size": DOES_NOT_FIT}],
                max_concurrent=1,
            ),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="stopped", storage_path=str(tmp_path / "ray"), stop=_StopOnceTold(stop), verbose=0
        ),
    )
    results = tuner.fit()
    summary = summarise(StudyConfig(space=get_space("normal"), study_dir=tmp_path / "s"), results)
    rows = {row["config"].get("batch_size"): row for row in summary["trials"]}
    assert sorted(rows) == [FITS, DOES_NOT_FIT]
    assert (rows[FITS]["state"], rows[DOES_NOT_FIT]["state"]) == ("complete", "interrupted")
    # Each row is its own trial's: the one that reported wrote its config beside its result.
    assert rows[FITS]["trial_id"] != rows[DOES_NOT_FIT]["trial_id"]
    [reported] = (tmp_path / "ray" / "stopped").glob(f"*_{rows[FITS]['trial_id']}_*/result.json")
    assert json.loads(reported.read_text().splitlines()[-1])["config"]["batch_size"] == FITS
