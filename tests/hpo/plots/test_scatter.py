"""`hpo.plots.scatter` on a real Optuna study: which trials the scatter draws, and where."""

from __future__ import annotations

from typing import cast

import matplotlib.pyplot as plt
import numpy as np
import optuna
from optuna.trial import TrialState

from hpo.plots.scatter import scatter_matplotlib, scatter_plotly, scatter_trials


def _told(
    study: optuna.Study, batch_size: int | None, factor: float, state: TrialState, **attrs: object
) -> None:
    """One trial at these batch settings (no batch size with `batch_size=None`), told `state`."""
    params: dict[str, object] = {"safety_factor": factor}
    if batch_size is not None:
        params["batch_size"] = batch_size
    study.enqueue_trial(params)
    trial = study.ask()
    if batch_size is not None:
        trial.suggest_int("batch_size", 8, 4096, log=True)
    trial.suggest_float("safety_factor", 0.3, 1.0)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    study.tell(trial, 0.9 if state == TrialState.COMPLETE else None, state=state)


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    _told(study, 64, 0.5, TrialState.COMPLETE)
    _told(study, 128, 0.6, TrialState.COMPLETE)
    _told(study, 4096, 1.0, TrialState.PRUNED, oom=True, oom_stage="tuner")
    _told(study, 2048, 0.9, TrialState.PRUNED, oom=True, oom_stage="train")
    _told(study, 1024, 0.95, TrialState.PRUNED, oom=True, oom_stage="train")
    _told(study, 32, 0.4, TrialState.PRUNED)  # pruned for another reason (say, ASHA)
    _told(study, 16, 0.3, TrialState.FAIL)
    _told(study, None, 0.7, TrialState.COMPLETE)  # no batch size: nothing to place
    study.ask()  # still running
    return study


def test_scatter_trials_keeps_finished_trials_with_both_axes() -> None:
    trials = scatter_trials(_study().get_trials(deepcopy=False))

    assert [t.params["batch_size"] for t in trials] == [64, 128, 4096, 2048, 1024, 32, 16]


def test_scatter_plotly_places_each_trial_in_its_group() -> None:
    figure = scatter_plotly(scatter_trials(_study().get_trials(deepcopy=False)), "val_f1")

    points = {trace.name: list(zip(trace.x, trace.y, strict=True)) for trace in figure.data}
    assert points == {
        "complete (colour: val_f1)": [(64, 0.5), (128, 0.6)],
        "out of memory (train)": [(2048, 0.9), (1024, 0.95)],
        "out of memory (tuner)": [(4096, 1.0)],
        "pruned": [(32, 0.4)],
        "failed": [(16, 0.3)],
    }
    [complete] = [t for t in figure.data if t.name.startswith("complete")]
    assert list(complete.marker.color) == [0.9, 0.9]
    oom = {t.name: t.marker for t in figure.data if t.name.startswith("out of memory")}
    assert oom["out of memory (tuner)"].color != oom["out of memory (train)"].color
    assert {m.symbol for m in oom.values()} == {"x"}
    assert figure.layout.xaxis.type == "log"


def test_scatter_matplotlib_draws_the_same_groups() -> None:
    figure = scatter_matplotlib(scatter_trials(_study().get_trials(deepcopy=False)), "val_f1")
    try:
        [axes, _colourbar] = figure.axes
        legend = axes.get_legend()
        assert legend is not None
        labels = [text.get_text() for text in legend.get_texts()]
        sizes = {
            collection.get_label(): len(cast("np.ndarray", collection.get_offsets()))
            for collection in axes.collections
        }
    finally:
        plt.close(figure)

    assert labels == [
        "complete",
        "out of memory (train)",
        "out of memory (tuner)",
        "pruned",
        "failed",
    ]
    assert sizes == {
        "complete": 2,
        "out of memory (train)": 2,
        "out of memory (tuner)": 1,
        "pruned": 1,
        "failed": 1,
    }
