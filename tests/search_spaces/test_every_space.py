"""The suite every registered search space must pass: it validates, samples, round-trips,
warm-starts, shrinks for smoke tests, and drives Ray's OptunaSearch as a define-by-run space."""

from __future__ import annotations

import json
import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from ray.tune.search.optuna import OptunaSearch

from hpo.study import StudyConfig, run_study
from search_spaces import (
    FIXED_KEYS,
    RAMP_KEYS,
    RAMP_SCHEDULE_TYPES,
    SEARCHED_KEYS,
    SPACES,
    STEP_KEYS,
    SearchSpace,
    TrialSettings,
)
from trainables.data.source import GraphSource

NUM_TRIALS = 40
EVERY_SPACE = pytest.mark.parametrize("space", list(SPACES.values()), ids=list(SPACES))


def _sample(space: SearchSpace, num_trials: int = NUM_TRIALS) -> list[dict[str, Any]]:
    """Parameter dicts of a real random-sampled study, asked and told as a study runs."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    samples = []
    for i in range(num_trials):
        trial = study.ask()
        fixed = space.suggest(trial)
        samples.append({**trial.params, **fixed})
        study.tell(trial, i / num_trials)
    return samples


def _expected_keys(space: SearchSpace, schedule_type: str) -> set[str]:
    keys = {*FIXED_KEYS, *SEARCHED_KEYS}
    if schedule_type == "step":
        keys |= set(STEP_KEYS) - (
            {"schedule_max_batch_size"} if space.schedule_max_batch_size is None else set()
        )
    elif schedule_type in RAMP_SCHEDULE_TYPES:
        keys |= set(RAMP_KEYS)
    return keys


@EVERY_SPACE
def test_space_validates(space: SearchSpace) -> None:
    space.validate()
    assert space.with_overrides() == space


@EVERY_SPACE
def test_space_samples_within_ranges_with_conditional_schedule_parameters(
    space: SearchSpace,
) -> None:
    samples = _sample(space)

    for params in samples:
        assert {key: params[key] for key in FIXED_KEYS} == space.fixed_params()
        assert space.batch_size.contains(params["batch_size"])
        assert space.eval_multiplier.contains(params["eval_multiplier"])
        assert space.safety_factor.contains(params["safety_factor"])
        assert 0.0 < params["safety_factor"] <= 1.0
        assert space.learning_rate.contains(params["learning_rate"])
        schedule_type = params["schedule_type"]
        assert schedule_type in space.schedule_type
        assert set(params) == _expected_keys(space, schedule_type)
        for key, bounds in space.schedule_ranges(schedule_type).items():
            assert bounds.contains(params[key]), (key, params[key], bounds)
            if key in ("schedule_step_size", "schedule_num_epochs"):
                assert params[key] <= space.epochs
        settings = space.trial_settings(params)
        assert settings.schedule.type == schedule_type
        sizes = settings.schedule.sizes_for_epochs(
            settings.batch_size, space.epochs, tuned_max=space.batch_size.high
        )
        assert len(sizes) == space.epochs
        assert all(1 <= size <= space.batch_size.high for size in sizes)
    # 40 random trials reach every schedule type, so every conditional branch ran.
    assert {params["schedule_type"] for params in samples} == set(space.schedule_type)


@EVERY_SPACE
def test_space_trial_settings_round_trip(space: SearchSpace) -> None:
    for params in _sample(space, 15):
        settings = space.trial_settings(params)
        assert settings.to_params() == params
        assert TrialSettings.from_params(settings.to_params()) == settings


@EVERY_SPACE
def test_space_warm_start_params_convert_and_are_enqueued_unchanged(space: SearchSpace) -> None:
    params = space.warm_start_params(0.65)
    settings = space.trial_settings(params)
    assert settings.safety_factor == 0.65
    # The top of the range: the factor, not the size asked for, sets the first trial's batch.
    assert params["batch_size"] == space.batch_size.high
    assert set(params) == _expected_keys(space, params["schedule_type"])

    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns when an enqueued value is out of range
        assert space.sample(study.ask()) == params


@EVERY_SPACE
def test_space_smoke_is_valid_and_small(space: SearchSpace) -> None:
    smoke = space.smoke()
    smoke.validate()
    assert smoke.name == space.name and smoke.mode == space.mode
    assert smoke.metric == space.metric
    assert 1 <= smoke.epochs <= 2
    assert smoke.batch_size.high <= 64
    assert smoke.schedule_final_batch_size.high <= 64
    assert smoke.schedule_max_batch_size is None or smoke.schedule_max_batch_size.high <= 64
    for params in _sample(smoke, 10):
        assert smoke.trial_settings(params).epochs == smoke.epochs


@EVERY_SPACE
def test_space_optimises_the_right_metric(space: SearchSpace) -> None:
    expected = "val_auroc" if space.mode == "autoencoder" else "val_f1"
    assert (space.metric, space.direction) == (expected, "max")
    assert space.mode == space.name
    assert space.size == ("student" if space.mode == "kd" else "teacher")


@EVERY_SPACE
def test_space_suggest_is_a_ray_optuna_search_define_by_run_space(space: SearchSpace) -> None:
    searcher = OptunaSearch(
        space=space.suggest,
        metric=space.metric,
        mode=space.direction,
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    for i in range(4):
        config = searcher.suggest(f"trial_{i}")
        assert config is not None
        assert config.items() >= space.fixed_params().items()
        space.trial_settings(config)
        assert searcher.suggest(f"trial_{i}") == config  # same trial id, same trial
        searcher.on_trial_complete(f"trial_{i}", {space.metric: 0.1 * i})


@EVERY_SPACE
def test_space_warm_start_is_ray_optuna_search_first_trial(space: SearchSpace) -> None:
    warm_start = space.warm_start_params(0.55)
    searcher = OptunaSearch(
        space=space.suggest,
        metric=space.metric,
        mode=space.direction,
        points_to_evaluate=[warm_start],
        sampler=optuna.samplers.TPESampler(seed=0),
    )
    assert searcher.suggest("trial_1") == warm_start
    second = searcher.suggest("trial_2")
    assert second is not None
    space.trial_settings(second)


@EVERY_SPACE
def test_space_and_its_suggest_pickle(space: SearchSpace) -> None:
    # Ray checkpoints a searcher by pickling it, define-by-run function included.
    assert pickle.loads(pickle.dumps(space)) == space
    assert pickle.loads(pickle.dumps(space.suggest)).__self__ == space


@EVERY_SPACE
def test_space_runs_a_smoke_trial(
    space: SearchSpace,
    ray_local: None,
    smoke_source: GraphSource,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One trial of the space through the whole platform: Ray, Optuna, the tuner, training."""
    # A relative study directory, as `--study-dir studies` gives: Ray's workers do not run in
    # the driver's working directory, so every path a trial gets must be absolute.
    monkeypatch.chdir(tmp_path)
    config = StudyConfig(
        space=space.smoke().with_overrides(epochs=1),
        study_dir=Path("study"),
        source=smoke_source,
        num_samples=1,
        max_concurrent=1,
        factor_store_path=tmp_path / "factors.json",
    )
    summary = run_study(config)
    [row] = summary["trials"]
    assert row["state"] == "complete", row
    assert 0.0 <= row["metric"] <= 1.0
    assert summary["best_value"] == row["metric"]
    params = row["config"]
    ceiling = max(1, math.floor(row["tuned_max_batch_size"] * params["safety_factor"]))
    assert row["train_batch_size"] == min(params["batch_size"], ceiling)
    saved = json.loads((Path(row["run_dir"]) / "config.json").read_text())
    assert saved["train_batch_size"] == row["train_batch_size"]
    assert saved["mode"] == space.mode
    assert (Path(row["run_dir"]) / "model.pt").is_file()
