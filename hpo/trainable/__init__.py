"""The Ray Tune trainable of a study: one trial runs the tuner-plus-factor trainer.

`train_trial(params, context)` turns Ray's flat parameter dict into a `TrainConfig` (the trial's
searched batch settings, the study's fixed ones from `TrialContext`), runs `run_training` and
reports every epoch to Ray. An out-of-memory end is reported as one last `oom_result` and the
function returns: Ray marks the trial TERMINATED and `OOMAwareOptunaSearch` tells Optuna PRUNED.
With `context.oom_as_error` (the baseline of `benchmarks/bench_oom_learning.py`) it raises
instead, as a trainable that does not know better would: ERROR in Ray, FAIL in Optuna.

- `context`: `TrialContext`, what every trial of a study shares, and `TrialOutOfMemoryError`;
- `config`: `train_config`, a trial's `TrainConfig` and its memory budget;
- `results`: what a trial reports to Ray (`epoch_result`, `final_result`, the epoch reporter)
  `finished_run`, the run of a trial that ended before the study was interrupted, and
  `unfinished_run_dirs`, the folders a trial's stopped attempts left;
- `trial`: `train_trial`, the function Ray runs, with its out-of-memory report and its log.

This package imports no torch at import time: Ray unpickles the trainable in every worker.
"""

from __future__ import annotations

from hpo.trainable.config import train_config
from hpo.trainable.context import TrialContext, TrialOutOfMemoryError
from hpo.trainable.results import epoch_result, final_result, finished_run, unfinished_run_dirs
from hpo.trainable.trial import train_trial

__all__ = [
    "TrialContext",
    "TrialOutOfMemoryError",
    "epoch_result",
    "final_result",
    "finished_run",
    "train_config",
    "train_trial",
    "unfinished_run_dirs",
]
