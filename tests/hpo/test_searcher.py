from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from hpo.searcher import (
    OOM_STAGES,
    STOPPED_EARLY_KEY,
    TRAINED_KEY,
    OOMAwareOptunaSearch,
    end_state,
    is_oom_result,
    oom_result,
    oom_user_attrs,
    worst_value,
)

METRIC = "val_f1"
NUM_EPOCHS = 3
# Sizes above these "do not fit": in the batch-size tuner (no epoch reported), or at validation
# of the second epoch (one epoch reported).
MAX_TUNER_BATCH_SIZE = 128
MAX_BATCH_SIZE = 64
# Each kind of trial at least once, then what TPE asks for.
POINTS_TO_EVALUATE = [{"batch_size": 16}, {"batch_size": 96}, {"batch_size": 200}]
NUM_SAMPLES = 8


def _suggest(trial: optuna.Trial) -> dict[str, Any]:
    trial.suggest_int("batch_size", 8, 256, log=True)
    return {"epochs": NUM_EPOCHS}


def _allocate(batch_size: int, max_batch_size: int) -> None:
    if batch_size > max_batch_size:
        raise MemoryError(f"batch of {batch_size} does not fit (max {max_batch_size})")


def _value(batch_size: int, epoch: int) -> float:
    return epoch / NUM_EPOCHS - batch_size / 1000


def _train(config: dict[str, Any]) -> None:
    """A tiny trainable that catches a real MemoryError the way the platform's trainable does."""
    batch_size = config["batch_size"]
    stage = "tuner"
    last_value: float | None = None
    try:
        _allocate(batch_size, MAX_TUNER_BATCH_SIZE)
        for epoch in range(1, config["epochs"] + 1):
            stage = "validation"
            if epoch > 1:
                _allocate(batch_size, MAX_BATCH_SIZE)
            last_value = _value(batch_size, epoch)
            tune.report({METRIC: last_value, "epoch": epoch})
    except MemoryError:
        tune.report(
            oom_result(
                METRIC,
                "max",
                stage=stage,  # type: ignore[arg-type]
                train_batch_size=batch_size,
                eval_batch_size=2 * batch_size,
                last_value=last_value,
            )
        )


def _train_to_the_end(config: dict[str, Any]) -> None:
    """Epochs as the platform's trainable reports them, then its last result."""
    for epoch in range(1, config["epochs"] + 1):
        value = _value(config["batch_size"], epoch)
        tune.report({METRIC: value, "epoch": epoch, TRAINED_KEY: False})
    tune.report({METRIC: value, "epoch": config["epochs"], TRAINED_KEY: True})


def _train_then_crash(config: dict[str, Any]) -> None:
    tune.report({METRIC: 0.5, "epoch": 1})
    raise RuntimeError(f"not an out-of-memory error (batch {config['batch_size']})")


@dataclass(frozen=True)
class _Run:
    results: tune.ResultGrid
    study: optuna.Study
    searcher: OOMAwareOptunaSearch


def _fit(
    trainable: Any,
    storage_dir: Path,
    *,
    num_samples: int,
    points: list[dict[str, Any]],
    scheduler: Any = None,
    max_concurrent: int = 2,
) -> _Run:
    url = f"sqlite:///{storage_dir / 'optuna.db'}"
    searcher = OOMAwareOptunaSearch(
        _suggest,
        metric=METRIC,
        mode="max",
        points_to_evaluate=points,
        storage=optuna.storages.RDBStorage(url),
        study_name="oom",
        seed=0,
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=max_concurrent),
            scheduler=scheduler,
            num_samples=num_samples,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="oom", storage_path=str(storage_dir / "ray"), verbose=0, log_to_file=True
        ),
    )
    results = tuner.fit()
    return _Run(results, optuna.load_study(study_name="oom", storage=url), searcher)


@pytest.fixture(scope="module")
def oom_run(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> _Run:
    return _fit(
        _train,
        tmp_path_factory.mktemp("oom"),
        num_samples=NUM_SAMPLES,
        points=POINTS_TO_EVALUATE,
    )


def _by_batch_size(study: optuna.Study) -> dict[str, list[optuna.trial.FrozenTrial]]:
    kinds: dict[str, list[optuna.trial.FrozenTrial]] = {"fits": [], "validation": [], "tuner": []}
    for trial in study.trials:
        batch_size = trial.params["batch_size"]
        if batch_size > MAX_TUNER_BATCH_SIZE:
            kinds["tuner"].append(trial)
        elif batch_size > MAX_BATCH_SIZE:
            kinds["validation"].append(trial)
        else:
            kinds["fits"].append(trial)
    return kinds


def test_oom_aware_optuna_search_ends_oom_trials_terminated_in_ray(oom_run: _Run) -> None:
    assert len(oom_run.results) == NUM_SAMPLES
    assert oom_run.results.errors == []
    for index in range(len(oom_run.results)):
        result = oom_run.results[index]
        assert result.error is None
        assert result.metrics is not None
        assert result.config is not None
        assert METRIC in result.metrics
        oom = result.config["batch_size"] > MAX_BATCH_SIZE
        assert is_oom_result(result.metrics) is oom
        if oom:
            assert result.metrics["oom_stage"] in ("tuner", "validation")
    assert {t.status for t in oom_run.results._experiment_analysis.trials} == {"TERMINATED"}


def test_oom_aware_optuna_search_prunes_exactly_the_oom_trials(oom_run: _Run) -> None:
    kinds = _by_batch_size(oom_run.study)
    assert len(oom_run.study.trials) == NUM_SAMPLES
    # Tune drives the very searcher object it was given: its study is the one in the storage.
    searcher_study = _study(oom_run.searcher)
    assert [t.state for t in searcher_study.trials] == [t.state for t in oom_run.study.trials]
    assert all(kinds.values()), kinds
    for stage in ("tuner", "validation"):
        for trial in kinds[stage]:
            assert trial.state == TrialState.PRUNED
            batch_size = trial.params["batch_size"]
            assert trial.user_attrs == {
                "oom": True,
                "oom_stage": stage,
                "train_batch_size": batch_size,
                "eval_batch_size": 2 * batch_size,
            }
    for trial in kinds["fits"]:
        assert trial.state == TrialState.COMPLETE
        assert trial.user_attrs == {}
        assert trial.value == pytest.approx(_value(trial.params["batch_size"], NUM_EPOCHS))


def test_oom_aware_optuna_search_keeps_intermediate_values_of_pruned_trials(
    oom_run: _Run,
) -> None:
    kinds = _by_batch_size(oom_run.study)
    for trial in kinds["validation"]:
        first = _value(trial.params["batch_size"], 1)
        # The OOM result's stand-in metric is not recorded: only the epoch that fitted.
        assert trial.intermediate_values == {1: pytest.approx(first)}
        assert trial.value == pytest.approx(first)
    for trial in kinds["tuner"]:
        assert trial.intermediate_values == {}
        assert trial.value is None
    for trial in kinds["fits"]:
        assert sorted(trial.intermediate_values) == [1, 2, 3]


def test_trials_the_scheduler_stops_are_pruned_not_complete(
    ray_local: None, tmp_path: Path
) -> None:
    from ray.tune.schedulers import ASHAScheduler

    # One at a time, smaller batches score higher: ASHA stops the later, larger ones at a rung.
    points = [{"batch_size": b} for b in (8, 16, 128, 192, 256)]
    asha = ASHAScheduler(
        metric=METRIC, mode="max", max_t=NUM_EPOCHS + 1, grace_period=1, reduction_factor=2
    )
    run = _fit(
        _train_to_the_end, tmp_path, num_samples=5, points=points, scheduler=asha, max_concurrent=1
    )
    assert run.results.errors == []
    trials = {t.params["batch_size"]: t for t in run.study.trials}
    ends = {
        run.results[i].config["batch_size"]: end_state(run.results[i].metrics, error=False)  # type: ignore[index]
        for i in range(len(run.results))
    }
    stopped = [b for b, state in ends.items() if state == "stopped-early"]
    assert stopped and len(stopped) < len(ends), ends
    for batch_size, state in ends.items():
        trial = trials[batch_size]
        if state == "stopped-early":
            # Pruned, as Optuna's own pruners end a trial: its epochs kept, its last the value.
            assert trial.state == TrialState.PRUNED
            assert trial.user_attrs == {STOPPED_EARLY_KEY: True}
            assert len(trial.intermediate_values) < NUM_EPOCHS
            last = max(trial.intermediate_values)
            assert trial.value == pytest.approx(_value(batch_size, last))
        else:
            assert state == "complete"
            assert trial.state == TrialState.COMPLETE and trial.user_attrs == {}
            assert trial.value == pytest.approx(_value(batch_size, NUM_EPOCHS))


def test_end_state_tells_the_four_ends_apart() -> None:
    assert end_state({METRIC: 0.9, TRAINED_KEY: True}, error=False) == "complete"
    assert end_state({METRIC: 0.9}, error=False) == "complete"  # a trainable without the key
    assert end_state({METRIC: 0.5, TRAINED_KEY: False}, error=False) == "stopped-early"
    oom = oom_result(METRIC, "max", stage="train", train_batch_size=8, eval_batch_size=8)
    assert end_state(oom, error=False) == "pruned-oom"
    assert end_state({METRIC: 0.9, TRAINED_KEY: True}, error=True) == "failed"
    assert end_state(None, error=False) == "complete"


def test_oom_aware_optuna_search_fails_a_real_error(ray_local: None, tmp_path: Path) -> None:
    run = _fit(_train_then_crash, tmp_path, num_samples=2, points=[])
    assert len(run.results.errors) == 2
    assert all(isinstance(error, Exception) for error in run.results.errors)
    assert {t.status for t in run.results._experiment_analysis.trials} == {"ERROR"}
    assert [t.state for t in run.study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert all(t.user_attrs == {} for t in run.study.trials)


def _study(searcher: OOMAwareOptunaSearch) -> optuna.Study:
    study = searcher._ot_study
    assert isinstance(study, optuna.Study)
    return study


def _searcher(**kwargs: Any) -> OOMAwareOptunaSearch:
    return OOMAwareOptunaSearch(_suggest, metric=METRIC, mode="max", seed=0, **kwargs)


def test_oom_aware_optuna_search_error_is_fail_even_with_the_metric() -> None:
    searcher = _searcher()
    searcher.suggest("a")
    searcher.on_trial_result("a", {METRIC: 0.5, "training_iteration": 1})
    searcher.on_trial_complete("a", result={METRIC: 0.5, "training_iteration": 1}, error=True)
    [trial] = _study(searcher).trials
    assert trial.state == TrialState.FAIL
    assert trial.value is None


def test_oom_aware_optuna_search_ignores_a_second_completion() -> None:
    searcher = _searcher()
    searcher.suggest("a")
    last = oom_result(METRIC, "max", stage="test", train_batch_size=8, eval_batch_size=None)
    searcher.on_trial_complete("a", result=last)
    searcher.on_trial_complete("a", result={METRIC: 0.9})
    [trial] = _study(searcher).trials
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["oom_stage"] == "test"
    assert trial.user_attrs["eval_batch_size"] is None


def test_oom_aware_optuna_search_saves_and_restores(tmp_path: Path) -> None:
    searcher = _searcher()
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_result("a", {METRIC: 0.25, "training_iteration": 1})
    path = tmp_path / "searcher.pkl"
    searcher.save(str(path))

    restored = _searcher()
    restored.restore(str(path))
    last = oom_result(
        METRIC, "max", stage="train", train_batch_size=32, eval_batch_size=64, last_value=0.25
    )
    restored.on_trial_result("a", {**last, "training_iteration": 2})
    restored.on_trial_complete("a", result={**last, "training_iteration": 2})
    restored.on_trial_complete("b", result={METRIC: 0.75, "training_iteration": 1})
    trials = _study(restored).trials
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.COMPLETE]
    assert trials[0].intermediate_values == {1: 0.25}
    assert trials[0].user_attrs["train_batch_size"] == 32
    assert trials[1].value == 0.75
    assert restored._completed_trials == {"a", "b"}
    # The original is untouched by what the restored copy was told.
    assert [t.state for t in _study(searcher).trials] == [TrialState.RUNNING] * 2


@pytest.mark.parametrize(("direction", "expected"), [("max", -math.inf), ("min", math.inf)])
def test_oom_result_reports_the_worst_value_without_a_last_value(
    direction: Any, expected: float
) -> None:
    result = oom_result(
        "loss", direction, stage="tuner", train_batch_size=None, eval_batch_size=None
    )
    assert result == {
        "loss": expected,
        "oom": True,
        "oom_stage": "tuner",
        "train_batch_size": None,
        "eval_batch_size": None,
    }
    assert worst_value(direction) == expected


def test_oom_result_reports_the_last_value() -> None:
    result = oom_result(
        METRIC, "max", stage="validation", train_batch_size=64, eval_batch_size=128, last_value=1
    )
    assert result[METRIC] == 1.0
    assert isinstance(result[METRIC], float)
    assert oom_user_attrs(result) == {
        "oom": True,
        "oom_stage": "validation",
        "train_batch_size": 64,
        "eval_batch_size": 128,
    }


def test_oom_result_rejects_an_unknown_stage() -> None:
    with pytest.raises(ValueError, match=r"stage must be one of tuner, train, validation, test"):
        oom_result(METRIC, "max", stage="fit", train_batch_size=8, eval_batch_size=8)  # type: ignore[arg-type]
    assert OOM_STAGES == ("tuner", "train", "validation", "test")


def test_oom_result_rejects_an_unknown_direction() -> None:
    with pytest.raises(ValueError, match=r"direction must be one of max, min, got direction='up'"):
        oom_result(METRIC, "up", stage="test", train_batch_size=8, eval_batch_size=8)  # type: ignore[arg-type]


def test_oom_result_rejects_an_empty_metric() -> None:
    with pytest.raises(ValueError, match=r"metric must be a non-empty metric name"):
        oom_result("", "max", stage="test", train_batch_size=8, eval_batch_size=8)


@pytest.mark.parametrize("batch_size", [0, -8, True, 8.0, "8"])
def test_oom_result_rejects_a_batch_size_that_is_not_a_positive_int(batch_size: Any) -> None:
    with pytest.raises(ValueError, match=r"train_batch_size must be an int >= 1 or None, got"):
        oom_result(METRIC, "max", stage="test", train_batch_size=batch_size, eval_batch_size=8)


def test_searcher_module_does_not_import_torch() -> None:
    # Ray workers import it to unpickle trainables; torch would add seconds to every worker.
    code = "import sys, hpo.searcher; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_is_oom_result_is_false_for_ordinary_and_missing_results() -> None:
    assert not is_oom_result(None)
    assert not is_oom_result({})
    assert not is_oom_result({METRIC: 0.5, "oom": False})
    assert is_oom_result({METRIC: 0.5, "oom": True})


def _stored_searcher(url: str) -> OOMAwareOptunaSearch:
    return OOMAwareOptunaSearch(
        _suggest, metric=METRIC, mode="max", storage=optuna.storages.RDBStorage(url), seed=0
    )


def _trial_reported_once(url: str) -> OOMAwareOptunaSearch:
    """A searcher whose trial `t1` has reported its first epoch (0.5)."""
    searcher = _stored_searcher(url)
    searcher.suggest("t1")
    searcher.on_trial_result("t1", {METRIC: 0.5, "training_iteration": 1})
    return searcher


def test_a_trial_run_again_after_restore_leaves_its_finished_optuna_trial_alone(
    tmp_path: Path,
) -> None:
    # After Tuner.restore, Ray runs again a trial its saved state had as running, though the
    # killed driver had already told Optuna how it ended. Its reports must not fail the study.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _trial_reported_once(url)
    searcher.on_trial_complete("t1", result={METRIC: 0.5, "training_iteration": 1})
    restored = _stored_searcher(url)
    restored.__dict__.update(searcher.__dict__)  # what Ray's restore_from_dir does
    restored._completed_trials = set()  # saved before the trial ended
    restored.on_trial_result("t1", {METRIC: 0.9, "training_iteration": 1})
    restored.on_trial_complete("t1", result={METRIC: 0.9, "training_iteration": 1})
    [trial] = optuna.load_study(study_name=_study(searcher).study_name, storage=url).trials
    assert (trial.state, trial.value, trial.intermediate_values) == (
        TrialState.COMPLETE,
        0.5,
        {1: 0.5},
    )


def test_a_running_trial_run_again_after_restore_reports_its_epochs_once(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    # Killed mid-trial: Ray runs it again from its first epoch. Optuna keeps the first report of
    # each step (and warned, over several lines, about each one reported again).
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _trial_reported_once(url)
    for step, value in ((1, 0.6), (2, 0.7)):  # the run again
        searcher.on_trial_result("t1", {METRIC: value, "training_iteration": step})
    searcher.on_trial_complete("t1", result={METRIC: 0.7, "training_iteration": 2})
    [trial] = optuna.load_study(study_name=_study(searcher).study_name, storage=url).trials
    assert (trial.state, trial.intermediate_values) == (TrialState.COMPLETE, {1: 0.5, 2: 0.7})
    assert not [w for w in recwarn if "already reported" in str(w.message)]
