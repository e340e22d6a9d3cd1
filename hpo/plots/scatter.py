"""The batch-size x safety-factor scatter: every finished trial, out-of-memory ones per stage.

COMPLETE trials are coloured by the study's metric; out-of-memory trials are red crosses, one
shade per stage; other PRUNED trials are open grey circles and FAIL trials grey squares. One
grouping, drawn twice: `scatter_plotly` for the HTML page, `scatter_matplotlib` for the PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from hpo.searcher import OOM_KEY, OOM_STAGE_KEY

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

__all__ = ["X_PARAM", "Y_PARAM", "scatter_matplotlib", "scatter_plotly", "scatter_trials"]

X_PARAM = "batch_size"
"""The scatter's x axis (log scale): the trial's searched batch size."""
Y_PARAM = "safety_factor"
"""The scatter's y axis: the trial's searched safety factor."""
# One shade per out-of-memory stage (`hpo.searcher.OOM_STAGES`), all red to orange.
_OOM_COLOURS = {"tuner": "#8b0000", "train": "#d62728", "validation": "#ff4500", "test": "#ff8c00"}
_OOM_COLOUR = "#d62728"
_FAIL_COLOUR = "#9e9e9e"


@dataclass(frozen=True)
class _Group:
    label: str
    colour: str
    marker: str
    trials: list[FrozenTrial]


def scatter_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The finished (COMPLETE, PRUNED, FAIL) trials that have both `X_PARAM` and `Y_PARAM`."""
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [
        t for t in trials if t.state in finished and X_PARAM in t.params and Y_PARAM in t.params
    ]


def _scatter_groups(trials: Sequence[FrozenTrial]) -> tuple[list[FrozenTrial], list[_Group]]:
    """The COMPLETE trials, and the others by legend entry (out of memory per stage first)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    oom: dict[str, list[FrozenTrial]] = {}
    pruned, failed = [], []
    for trial in trials:
        if trial.state == TrialState.PRUNED and trial.user_attrs.get(OOM_KEY) is True:
            stage = trial.user_attrs.get(OOM_STAGE_KEY) or "unknown stage"
            oom.setdefault(str(stage), []).append(trial)
        elif trial.state == TrialState.PRUNED:
            pruned.append(trial)
        elif trial.state == TrialState.FAIL:
            failed.append(trial)
    groups = [
        _Group(f"out of memory ({stage})", _OOM_COLOURS.get(stage, _OOM_COLOUR), "x", members)
        for stage, members in sorted(oom.items())
    ]
    if pruned:
        groups.append(_Group("pruned", _FAIL_COLOUR, "o", pruned))
    if failed:
        groups.append(_Group("failed", _FAIL_COLOUR, "s", failed))
    return complete, groups


def _hover(trial: FrozenTrial, metric: str) -> str:
    value = f"{metric} {trial.value:.4g}" if trial.value is not None else trial.state.name
    params = "<br>".join(f"{k}: {v}" for k, v in sorted(trial.params.items()))
    return f"trial {trial.number}: {value}<br>{params}"


def scatter_plotly(trials: Sequence[FrozenTrial], metric: str) -> go.Figure:
    """The scatter of `trials` (from `scatter_trials`) as a plotly figure, coloured by `metric`."""
    import plotly.graph_objects as go

    complete, groups = _scatter_groups(trials)
    figure = go.Figure()
    if complete:
        figure.add_trace(
            go.Scatter(
                x=[t.params[X_PARAM] for t in complete],
                y=[t.params[Y_PARAM] for t in complete],
                mode="markers",
                name=f"complete (colour: {metric})",
                text=[_hover(t, metric) for t in complete],
                hoverinfo="text",
                marker={
                    "size": 10,
                    "color": [t.value for t in complete],
                    "colorscale": "Viridis",
                    "colorbar": {"title": {"text": metric}},
                    "showscale": True,
                    "line": {"width": 0.5, "color": "#333333"},
                },
            )
        )
    symbols = {"x": "x", "o": "circle-open", "s": "square"}
    for group in groups:
        figure.add_trace(
            go.Scatter(
                x=[t.params[X_PARAM] for t in group.trials],
                y=[t.params[Y_PARAM] for t in group.trials],
                mode="markers",
                name=group.label,
                text=[_hover(t, metric) for t in group.trials],
                hoverinfo="text",
                marker={"size": 10, "color": group.colour, "symbol": symbols[group.marker]},
            )
        )
    figure.update_layout(
        title="batch size x safety factor",
        xaxis={"title": {"text": X_PARAM}, "type": "log"},
        yaxis={"title": {"text": Y_PARAM}},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def scatter_matplotlib(trials: Sequence[FrozenTrial], metric: str) -> Figure:
    """The scatter of `trials` (from `scatter_trials`) as a matplotlib figure (close it after)."""
    import matplotlib.pyplot as plt

    complete, groups = _scatter_groups(trials)
    figure, axes = plt.subplots(figsize=(7.0, 5.0))
    if complete:
        points = axes.scatter(
            [t.params[X_PARAM] for t in complete],
            [t.params[Y_PARAM] for t in complete],
            c=[float(t.value or 0.0) for t in complete],
            cmap="viridis",
            edgecolors="#333333",
            linewidths=0.5,
            label="complete",
            zorder=2,
        )
        figure.colorbar(points, ax=axes, label=metric)
    for group in groups:
        # An open circle has no face: its colour goes to the edge.
        colours: dict[str, Any] = (
            {"facecolors": "none", "edgecolors": group.colour}
            if group.marker == "o"
            else {"color": group.colour}
        )
        axes.scatter(
            [t.params[X_PARAM] for t in group.trials],
            [t.params[Y_PARAM] for t in group.trials],
            marker=group.marker,
            label=group.label,
            zorder=3,
            **colours,
        )
    axes.set_xscale("log")
    axes.set_xlabel(X_PARAM)
    axes.set_ylabel(Y_PARAM)
    axes.set_title("batch size x safety factor")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return figure
