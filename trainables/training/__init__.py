"""One training run of any mode: configuration, the tuner-plus-factor flow, run directories."""

from trainables.training.config import (
    MODES,
    OOM_STAGES,
    BatchTuning,
    Mode,
    OomStage,
    RunResult,
    TrainConfig,
)
from trainables.training.run import DEFAULT_SAFETY_FACTOR, new_run_dir, run_training

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
