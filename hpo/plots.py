"""`write_study_plots(study, out_dir, metric=...)`: a study's plots as HTML and PNG.

Four plots, each as `<name>.html` (plotly; the page loads plotly.js from its CDN) and
`<name>.png` (matplotlib, Agg; plotly cannot write images without kaleido):

- `optimization_history`: the metric of each COMPLETE trial and the best so far;
- `param_importances`: how much each searched parameter matters (Optuna's default evaluator);
- `parallel_coordinate`: the COMPLETE trials across the parameters all of them have;
- `batch_size_vs_safety_factor`: every finished trial by `batch_size` (log scale) and
  `safety_factor`: COMPLETE trials coloured by their metric, out-of-memory trials as red crosses
  per stage, FAIL trials grey. It shows where the memory runs out.

A plot the study cannot support yet (no COMPLETE trial; importances from fewer than two
COMPLETE trials or fewer than two parameters that vary) is skipped with one log line.
The first three are Optuna's own (`optuna.visualization` and its matplotlib twin).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.searcher import OOM_KEY, OOM_STAGE_KEY

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

__all__ = ["PLOT_NAMES", "write_study_plots"]

logger = logging.getLogger("hpo.run")

PLOT_NAMES = (
    "optimization_history",
    "param_importances",
    "parallel_coordinate",
    "batch_size_vs_safety_factor",
)
_X_PARAM = "batch_size"
_Y_PARAM = "safety_factor"
# One shade per out-of-memory stage (`hpo.searcher.OOM_STAGES`), all red to orange.
_OOM_COLOURS = {"tuner": "#8b0000", "train": "#d62728", "validation": "#ff4500", "test": "#ff8c00"}
_OOM_COLOUR = "#d62728"
_FAIL_COLOUR = "#9e9e9e"
_PNG_DPI = 100


def write_study_plots(study: optuna.Study, out_dir: Path, *, metric: str) -> list[Path]:
    """Write the study's plots to `out_dir` (created if missing) as HTML and PNG.

    Args:
        study: A single-objective Optuna study (e.g. loaded from a study's `optuna.db`).
        out_dir: The folder the files go to; existing plots of the same names are replaced.
        metric: The name of the study's objective (e.g. `val_f1`), for axis and colour labels.

    Returns:
        The files written, `.html` before `.png` for each plot in `PLOT_NAMES` order; plots
        the study cannot support are left out (and logged).

    Example:
        >>> import optuna, tempfile
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(direction="maximize")
        >>> study.optimize(
        ...     lambda t: t.suggest_int("batch_size", 8, 512, log=True)
        ...     * t.suggest_float("safety_factor", 0.5, 0.9) / 512,
        ...     n_trials=4,
        ... )
        >>> paths = write_study_plots(study, Path(tempfile.mkdtemp()), metric="val_f1")
        >>> sorted({p.suffix for p in paths})
        ['.html', '.png']
    """
    if len(study.directions) > 1:
        logger.info("plots: skipped all: study %s has several objectives", study.study_name)
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    plots = _plots(trials, complete, metric)
    written: list[Path] = []
    with _quiet_plotting():
        import matplotlib.pyplot as plt

        for plot in plots:
            if plot.skip_reason is not None:
                logger.info("plots: skipped %s: %s", plot.name, plot.skip_reason)
                continue
            html = out_dir / f"{plot.name}.html"
            plot.plotly(study).write_html(html, include_plotlyjs="cdn")
            written.append(html)
            figure = plot.matplotlib(study)
            try:
                png = out_dir / f"{plot.name}.png"
                figure.savefig(png, dpi=_PNG_DPI, bbox_inches="tight")
                written.append(png)
            finally:
                plt.close(figure)
    return written


@dataclass(frozen=True)
class _Plot:
    name: str
    skip_reason: str | None
    plotly: Callable[[optuna.Study], go.Figure]
    matplotlib: Callable[[optuna.Study], Figure]


def _plots(
    trials: Sequence[FrozenTrial], complete: Sequence[FrozenTrial], metric: str
) -> list[_Plot]:
    from optuna import visualization as vis
    from optuna.visualization import matplotlib as mpl_vis

    no_complete = None if complete else "no COMPLETE trial yet"
    common = _common_params(complete)
    varying = [name for name in common if len({repr(t.params[name]) for t in complete}) > 1]
    if len(complete) < 2:
        importances_skip: str | None = f"needs >= 2 COMPLETE trials, the study has {len(complete)}"
    elif len(varying) < 2:
        importances_skip = f"needs >= 2 parameters that vary, got {varying or 'none'}"
    else:
        importances_skip = None
    scattered = _scatter_trials(trials)
    scatter_skip = None if scattered else f"no finished trial with both {_X_PARAM} and {_Y_PARAM}"
    return [
        _Plot(
            "optimization_history",
            no_complete,
            lambda s: vis.plot_optimization_history(s, target_name=metric),
            lambda s: _figure(mpl_vis.plot_optimization_history(s, target_name=metric)),
        ),
        _Plot(
            "param_importances",
            importances_skip,
            lambda s: vis.plot_param_importances(s, target_name=metric),
            lambda s: _figure(mpl_vis.plot_param_importances(s, target_name=metric)),
        ),
        _Plot(
            "parallel_coordinate",
            no_complete,
            # Only the parameters every COMPLETE trial has: Optuna leaves out a trial that
            # lacks one of the plotted parameters (a schedule's own fields are conditional).
            lambda s: vis.plot_parallel_coordinate(s, params=common, target_name=metric),
            lambda s: _figure(
                mpl_vis.plot_parallel_coordinate(s, params=common, target_name=metric)
            ),
        ),
        _Plot(
            "batch_size_vs_safety_factor",
            scatter_skip,
            lambda s: _scatter_plotly(scattered, metric),
            lambda s: _scatter_matplotlib(scattered, metric),
        ),
    ]


def _common_params(complete: Sequence[FrozenTrial]) -> list[str]:
    if not complete:
        return []
    names = set(complete[0].params)
    for trial in complete[1:]:
        names &= set(trial.params)
    return sorted(names)


def _figure(axes: Any) -> Figure:
    # Optuna's matplotlib plots return an Axes, or an array of them for several subplots.
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    figure: Figure = first.get_figure()
    return figure


@contextmanager
def _quiet_plotting() -> Iterator[None]:
    """Headless figures, the global matplotlib style left as it was, and no warnings about
    Optuna's experimental matplotlib API or the degenerate axes of small studies."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        # Nobody in this process plots interactively yet: files only, no display needed.
        matplotlib.use("Agg")
    # Optuna's matplotlib plots switch the global style to ggplot; rc_context undoes it.
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"optuna\.")
        yield


@dataclass(frozen=True)
class _Group:
    label: str
    colour: str
    marker: str
    trials: list[FrozenTrial]


def _scatter_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return [
        t for t in trials if t.state in finished and _X_PARAM in t.params and _Y_PARAM in t.params
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


def _scatter_plotly(trials: Sequence[FrozenTrial], metric: str) -> go.Figure:
    import plotly.graph_objects as go

    complete, groups = _scatter_groups(trials)
    figure = go.Figure()
    if complete:
        figure.add_trace(
            go.Scatter(
                x=[t.params[_X_PARAM] for t in complete],
                y=[t.params[_Y_PARAM] for t in complete],
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
                x=[t.params[_X_PARAM] for t in group.trials],
                y=[t.params[_Y_PARAM] for t in group.trials],
                mode="markers",
                name=group.label,
                text=[_hover(t, metric) for t in group.trials],
                hoverinfo="text",
                marker={"size": 10, "color": group.colour, "symbol": symbols[group.marker]},
            )
        )
    figure.update_layout(
        title="batch size x safety factor",
        xaxis={"title": {"text": _X_PARAM}, "type": "log"},
        yaxis={"title": {"text": _Y_PARAM}},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _scatter_matplotlib(trials: Sequence[FrozenTrial], metric: str) -> Figure:
    import matplotlib.pyplot as plt

    complete, groups = _scatter_groups(trials)
    figure, axes = plt.subplots(figsize=(7.0, 5.0))
    if complete:
        points = axes.scatter(
            [t.params[_X_PARAM] for t in complete],
            [t.params[_Y_PARAM] for t in complete],
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
            [t.params[_X_PARAM] for t in group.trials],
            [t.params[_Y_PARAM] for t in group.trials],
            marker=group.marker,
            label=group.label,
            zorder=3,
            **colours,
        )
    axes.set_xscale("log")
    axes.set_xlabel(_X_PARAM)
    axes.set_ylabel(_Y_PARAM)
    axes.set_title("batch size x safety factor")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    return figure
