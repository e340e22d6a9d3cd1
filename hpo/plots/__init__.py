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

- `study`: the study's plot set and how it is written (`write_study_plots`, `PLOT_NAMES`);
- `scatter`: the batch-size x safety-factor scatter, out-of-memory trials marked per stage.
"""

from __future__ import annotations

from hpo.plots.study import PLOT_NAMES, write_study_plots

__all__ = ["PLOT_NAMES", "write_study_plots"]
