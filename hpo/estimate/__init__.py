"""`python -m hpo.estimate`: a study's batch-size limits, wall time and SLURM request, measured.

- `probe`: the space's model on each dataset (memory and seconds per graph, the tuner replayed;
  `model_probe` measures the model's lines and replays the tuner on them);
- `machinery`: a dry study (Ray, MLflow, worker start-up, a trial's speed beside the others;
  `dry_trial` holds its trials and their Tuner);
- `arithmetic` and `combine`: the estimate from those measurements, for the trials the study's
  sampler draws; `cli`: the command line.
"""

from hpo.estimate.arithmetic import (
    DEFAULT_MARGIN,
    LinearFit,
    TrialWork,
    fit_line,
    max_batch_size,
    slurm_gres,
    slurm_mem,
    slurm_time,
    steps_seconds,
    study_makespan,
)
from hpo.estimate.cli import format_table, main
from hpo.estimate.combine import StudyEstimate, combine, sampled_trials, trial_budget_bytes
from hpo.estimate.machinery import Machinery, measure_machinery
from hpo.estimate.model_probe import ModelProbe
from hpo.estimate.probe import DatasetProbe, probe_dataset
from hpo.estimate.steps import StepBenchmark, StepTiming
from hpo.estimate.study import estimate_study, warm_up_driver

__all__ = [
    "DEFAULT_MARGIN",
    "DatasetProbe",
    "LinearFit",
    "Machinery",
    "ModelProbe",
    "StepBenchmark",
    "StepTiming",
    "StudyEstimate",
    "TrialWork",
    "combine",
    "estimate_study",
    "fit_line",
    "format_table",
    "main",
    "max_batch_size",
    "measure_machinery",
    "probe_dataset",
    "sampled_trials",
    "slurm_gres",
    "slurm_mem",
    "slurm_time",
    "steps_seconds",
    "study_makespan",
    "trial_budget_bytes",
    "warm_up_driver",
]
