"""`write_study_plots`: the study's plot set (`PLOT_NAMES`), written as HTML and PNG.

Three of the plots are Optuna's own (`optuna.visualization` and its matplotlib twin); the
fourth is `hpo.plots.scatter`'s.
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

from hpo.plots.scatter import X_PARAM, Y_PARAM, scatter_matplotlib, scatter_plotly, scatter_trials

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
    scattered = scatter_trials(trials)
    scatter_skip = None if scattered else f"no finished trial with both {X_PARAM} and {Y_PARAM}"
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
            lambda s: scatter_plotly(scattered, metric),
            lambda s: scatter_matplotlib(scattered, metric),
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
