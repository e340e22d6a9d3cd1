"""`hpo.plots.study.write_study_plots` on real Optuna studies: every plot, and the ones skipped."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.plots import PLOT_NAMES, write_study_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _suggest(trial: optuna.Trial) -> None:
    trial.suggest_int("batch_size", 8, 4096, log=True)
    trial.suggest_float("safety_factor", 0.3, 0.95)
    trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    schedule = trial.suggest_categorical("schedule_type", ["none", "step"])
    if schedule == "step":
        trial.suggest_int("schedule_gamma", 2, 4)


def _study(tmp_path: Path, *, num_complete: int) -> optuna.Study:
    """A study in SQLite with `num_complete` COMPLETE trials, 2 out of memory, 1 FAIL."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="plots",
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    for index in range(num_complete):
        trial = study.ask()
        _suggest(trial)
        study.tell(trial, 0.5 + 0.05 * index)
    for stage in ("tuner", "train"):
        trial = study.ask()
        _suggest(trial)
        trial.set_user_attr("oom", True)
        trial.set_user_attr("oom_stage", stage)
        study.tell(trial, state=TrialState.PRUNED)
    trial = study.ask()
    _suggest(trial)
    study.tell(trial, state=TrialState.FAIL)
    return study


def test_write_study_plots_writes_every_plot_as_html_and_png(tmp_path: Path) -> None:
    study = _study(tmp_path, num_complete=6)
    out_dir = tmp_path / "plots"
    with warnings.catch_warnings():
        warnings.simplefilter("error", optuna.exceptions.ExperimentalWarning)
        paths = write_study_plots(study, out_dir, metric="val_f1")

    expected = [out_dir / f"{name}.{ext}" for name in PLOT_NAMES for ext in ("html", "png")]
    assert paths == expected
    for path in paths:
        assert path.is_file() and path.stat().st_size > 0, path
    for path in out_dir.glob("*.png"):
        assert path.read_bytes().startswith(PNG_SIGNATURE), path
    scatter = (out_dir / "batch_size_vs_safety_factor.html").read_text()
    assert "out of memory (tuner)" in scatter and "out of memory (train)" in scatter
    assert "failed" in scatter


def test_write_study_plots_skips_importances_with_one_complete_trial(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = _study(tmp_path, num_complete=1)
    with caplog.at_level(logging.INFO, logger="hpo.run"):
        paths = write_study_plots(study, tmp_path / "plots", metric="val_f1")

    names = {path.stem for path in paths}
    assert "param_importances" not in names
    assert {"optimization_history", "batch_size_vs_safety_factor"} <= names
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [
        "plots: skipped param_importances: needs >= 2 COMPLETE trials, the study has 1"
    ]


def test_write_study_plots_without_complete_trials_draws_only_the_scatter(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = _study(tmp_path, num_complete=0)
    with caplog.at_level(logging.INFO, logger="hpo.run"):
        paths = write_study_plots(study, tmp_path / "plots", metric="val_f1")

    assert {path.name for path in paths} == {
        "batch_size_vs_safety_factor.html",
        "batch_size_vs_safety_factor.png",
    }
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 3


def test_write_study_plots_of_an_empty_study_writes_nothing(tmp_path: Path) -> None:
    study = optuna.create_study()
    assert write_study_plots(study, tmp_path / "plots", metric="val_loss") == []
