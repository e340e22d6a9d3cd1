"""`run_study(config)`: one HPO study on Ray Tune with an OOM-aware Optuna sampler.

A study directory holds everything of one study:

- `study.json`: the study's settings (a resumed study runs with them);
- `optuna.db`: the Optuna study (SQLite), the sampler's memory across interruptions;
- `ray/trials/`: the Ray Tune experiment (`Tuner.restore` resumes it);
- `prerequisites/`, `runs/<trial>/`: the models trained once for the study, each trial's run
  (`model.pt`, `config.json`, `metrics.json`, `train.log`), never overwritten;
- `batch_size_frontier.json`: the tuned maxima, shared by the trials;
- `summary.json`: the trials and the best configuration (see `hpo.summary`).

The driver prepares the data and the prerequisite models once, starts (or joins) Ray, and runs
`hpo.trainable.train_trial` for each trial under a `ConcurrencyLimiter`, with optional ASHA.
"""

from hpo.study.config import SCHEDULERS, Scheduler, StudyConfig, StudyPaths
from hpo.study.run import run_study

__all__ = ["SCHEDULERS", "Scheduler", "StudyConfig", "StudyPaths", "run_study"]
