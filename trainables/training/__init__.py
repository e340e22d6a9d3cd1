"""One training run of any mode: configuration, the tuner-plus-factor flow, run directories.

Names are re-exported lazily (PEP 562): a CLI's `--help` and Ray workers that only need the
names of modes do not pay for importing Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainables._lazy import lazy_exports

if TYPE_CHECKING:
    from trainables.training.config import BatchTuning, RunResult, TrainConfig
    from trainables.training.factors import DEFAULT_SAFETY_FACTOR
    from trainables.training.names import MODES, OOM_STAGES, Mode, OomStage
    from trainables.training.run import new_run_dir, run_training

_WHERE = {
    "BatchTuning": "config",
    "RunResult": "config",
    "TrainConfig": "config",
    "MODES": "names",
    "OOM_STAGES": "names",
    "Mode": "names",
    "OomStage": "names",
    "DEFAULT_SAFETY_FACTOR": "factors",
    "new_run_dir": "run",
    "run_training": "run",
}

__all__ = [
    "DEFAULT_SAFETY_FACTOR",
    "MODES",
    "OOM_STAGES",
    "BatchTuning",
    "Mode",
    "OomStage",
    "RunResult",
    "TrainConfig",
    "new_run_dir",
    "run_training",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
