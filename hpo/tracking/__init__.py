"""MLflow tracking of a study: one store, one experiment per space, a parent run per study and a
child run per trial. Only the driver writes (a Ray Tune callback), so parallel trials never write
to a SQLite store at once.

Layout (what `hpo.report` reads back):

- experiment `hpo-<space>`;
- parent run (name: the study's name), tags `hpo.role=study`, `hpo.study`, `hpo.space`,
  `hpo.metric`, `hpo.direction` and the study tags (`space`, `mode`, `dataset`, `model_size`,
  `seed`, `device_type`, `memory_budget`); params: the fixed values and the study's settings;
  artifacts: `summary.json` and `plots/`;
- child run per trial (name `trial-<id>`), tags `mlflow.parentRunId`, `hpo.role=trial`,
  `hpo.study`, `hpo.trial_id`, the study tags, `state` (`complete`, `pruned-oom`,
  `stopped-early`, `failed`), `oom` (`true`/`false`), `oom_stage` (empty when none); params:
  every searched and fixed value plus `applied_train_batch_size`, `eval_batch_size`,
  `tuned_max_batch_size`; metrics per epoch (step = epoch): `train_loss`, the `val_*` values,
  `train_batch_size`, `graphs_per_second`, `peak_memory_bytes`, each once per step (the first
  value, across `--resume`s); artifacts: `config.json`,
  `metrics.json` and `model/` (`model.pt` and its `config.json`);
- the best trial's `model/` registered as `<space>-<dataset>`, one new version per study;
- the run of a trial a killed driver had started but Ray's saved state did not know is deleted
  once the study has all its trials (another trial ran in its place): the runs are the summary's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.tracking.store import (
    check_tracking_uri,
    default_tracking_uri,
    experiment_name,
    ui_command,
)

if TYPE_CHECKING:
    from hpo.tracking.study import MlflowTrialLogger, StudyTracker

__all__ = [
    "MlflowTrialLogger",
    "StudyTracker",
    "check_tracking_uri",
    "default_tracking_uri",
    "experiment_name",
    "ui_command",
]


def __getattr__(name: str) -> Any:
    # The writers import Ray Tune (seconds); the store's helpers, which `hpo.report` uses, do not.
    if name in ("MlflowTrialLogger", "StudyTracker"):
        from hpo.tracking import study

        return getattr(study, name)
    raise AttributeError(f"module 'hpo.tracking' has no attribute {name!r}")
