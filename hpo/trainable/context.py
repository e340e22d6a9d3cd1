"""What every trial of a study shares (`TrialContext`), and the error of a trial that ran out of
memory when the study treats that as a failure (`TrialOutOfMemoryError`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from search_spaces.base import SearchSpace
    from trainables.data.source import GraphSource

__all__ = ["TrialContext", "TrialOutOfMemoryError"]


class TrialOutOfMemoryError(MemoryError):
    """Raised by a trial that ran out of memory when `TrialContext.oom_as_error` is set."""


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares: data, models it builds on, budget, where to write.

    Args:
        space: The study's search space (with the study's overrides: `--epochs`, smoke).
        source: Where the graphs come from (already built into the cache by the driver).
        seed: The study's seed: every trial splits, shuffles and initialises alike, so trials
            differ only in their searched settings.
        study_dir: The study directory; runs go to `<study_dir>/runs/`, the frontier memo to
            `<study_dir>/batch_size_frontier.json`.
        tune_batch_size: Run the batch-size tuner (the tuner-plus-factor trainer); otherwise
            train at the searched batch size as it is.
        memory_budget: Device-memory budget per trial in bytes; None for the default (CPU: the
            available memory over `num_concurrent_trials`; CUDA: `gpus_per_trial` of the GPU).
        gpus_per_trial: The GPU share of a trial, for the default CUDA budget.
        num_concurrent_trials: Trials running at once, for the default CPU budget.
        default_budget: The default CPU budget the driver fixed for the whole study (available
            memory over `num_concurrent_trials` when the study started), so every trial has the
            same frontier-memo key and the tuner runs once; None: each trial computes it.
        factor_store_path: The adaptive safety-factor store tuned trials update (see
            `trainables.training.factors.record_factor_outcome`).
        teacher: kd: the study's teacher checkpoint.
        vgae: curriculum and fusion: the study's VGAE checkpoint.
        gat: fusion: the study's GAT checkpoint.
        oom_as_error: Raise `TrialOutOfMemoryError` on OOM instead of reporting it (baseline).
    """

    space: SearchSpace
    source: GraphSource
    seed: int
    study_dir: Path
    tune_batch_size: bool = True
    memory_budget: int | None = None
    gpus_per_trial: float = 0.0
    num_concurrent_trials: int = 1
    default_budget: int | None = None
    factor_store_path: Path | None = None
    teacher: Path | None = None
    vgae: Path | None = None
    gat: Path | None = None
    oom_as_error: bool = False

    @property
    def metric(self) -> str:
        return self.space.metric

    @property
    def runs_dir(self) -> Path:
        return self.study_dir / "runs"

    @property
    def memo_path(self) -> Path:
        return self.study_dir / "batch_size_frontier.json"
