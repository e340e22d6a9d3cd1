"""Frozen configuration of one training run, and what a run reports."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trainables.batching.schedules import (
    BatchSizeSchedule,
    ConstantSchedule,
    PiecewiseSchedule,
    check_milestones_reached,
    schedule_from_dict,
)
from trainables.batching.tuner import TunerSettings
from trainables.data.source import GraphSource
from trainables.errors import UserError, require_int
from trainables.models import ModelSize, check_model_size
from trainables.training.names import MODES, OOM_STAGES, Mode, OomStage
from trainables.training.replay import naming_config_keys

__all__ = ["MODES", "OOM_STAGES", "BatchTuning", "Mode", "OomStage", "RunResult", "TrainConfig"]

_DEFAULT_SIZE: dict[str, ModelSize] = {"kd": "student"}


@dataclass(frozen=True)
class BatchTuning:
    """The tuner-plus-factor settings: how a run finds, scales and schedules its batch size.

    With `tune`, Lightning's tuner finds the largest train and eval batches that fit (on the
    worst-case batches, under `memory_budget`), `safety_factor` scales the train maximum once,
    `eval_multiplier` sets the eval size from it, and `schedule` changes it per epoch.

    Args:
        tune: Whether to run the tuner (`--tune-batch-size`); otherwise the configured batch
            size is used as it is (a schedule still applies to it).
        memory_budget: Device-memory budget in bytes (`--memory-budget`); None: on CPU the
            available memory divided by `num_concurrent_trials`, on CUDA the free memory.
        safety_factor: Share of the tuned maximum to apply, in (0, 1], or `auto` for the
            adaptive store's recommendation (default 0.9).
        eval_multiplier: Eval batch = min(train batch x this, eval maximum) (default 2).
        schedule: Batch-size schedule over epochs (default constant).
        tuner: How the tuner searches.
        memo_path: Frontier memo file (default `<out>/batch_size_frontier.json`).
        factor_store_path: Adaptive safety-factor store (default in the cache folder).
        num_concurrent_trials: Trials sharing the machine, for the default budget (default 1).
        default_budget: The budget to use when `memory_budget` is None, fixed by whoever runs
            several trials (an HPO study computes it once, so that every trial has the same
            frontier-memo key); None: computed when the run starts. The adaptive factor store
            still keys such a run as "default budget".
        budget_is_default: `memory_budget` was not asked for but derived by whoever runs the
            trial (an HPO study's share of a GPU): the adaptive factor store keys the run as
            "default budget" too, where the study's warm start looks its factor up.

    Example:
        >>> BatchTuning(tune=True, safety_factor=0.5).schedule.type
        'none'
    """

    tune: bool = False
    memory_budget: int | None = None
    safety_factor: float | Literal["auto"] = 0.9
    eval_multiplier: float = 2.0
    schedule: BatchSizeSchedule = field(default_factory=ConstantSchedule)
    tuner: TunerSettings = field(default_factory=TunerSettings)
    memo_path: Path | None = None
    factor_store_path: Path | None = None
    num_concurrent_trials: int = 1
    default_budget: int | None = None
    budget_is_default: bool = False

    def __post_init__(self) -> None:
        if self.safety_factor != "auto" and not (
            isinstance(self.safety_factor, int | float) and 0.0 < self.safety_factor <= 1.0
        ):
            raise UserError(
                f"--safety-factor must be in (0, 1] or 'auto', got {self.safety_factor!r}"
            )
        if not (self.eval_multiplier >= 1.0 and math.isfinite(self.eval_multiplier)):
            raise UserError(
                f"--eval-multiplier must be a finite number >= 1, got {self.eval_multiplier}"
            )
        if self.memory_budget is not None and self.memory_budget <= 0:
            raise UserError(f"--memory-budget must be > 0 bytes, got {self.memory_budget}")
        if self.num_concurrent_trials < 1:
            raise UserError(
                f"num_concurrent_trials must be >= 1, got {self.num_concurrent_trials}"
            )
        if self.default_budget is not None and self.default_budget <= 0:
            raise UserError(f"default_budget must be > 0 bytes, got {self.default_budget}")

    @property
    def uses_budget(self) -> bool:
        return self.tune or self.memory_budget is not None


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on.

    Args:
        mode: `normal`, `autoencoder`, `curriculum`, `kd` or `fusion`.
        size: `teacher` or `student` (default: student for kd, teacher otherwise).
        source: Where graphs come from (default: synthetic traffic).
        epochs: Training epochs (default 10).
        batch_size: Training batch size (default 64; with tuning, the tuner decides).
        eval_batch_size: Validation/test batch size; wins over the eval multiplier.
        learning_rate: Adam learning rate (default 1e-3).
        seed: Seed of the split, the shuffle and the model's initialisation (default 0).
        out_dir: Where run directories are created (default `runs`).
        teacher: kd: a trained teacher GAT (run directory or `model.pt`); trained first if None.
        vgae: curriculum and fusion: a trained VGAE; trained first if None.
        gat: fusion: a trained GAT; trained first if None.
        prerequisite_epochs: Epochs for models trained first (default: `epochs`).
        kd_temperature: Distillation temperature T (default 4).
        kd_alpha: Weight of the distillation term (default 0.7).
        val_fraction: Share of training graphs held out for validation (default 0.2).
        batching: Batch-size tuning, safety factor, budget and schedule.

    Example:
        >>> TrainConfig(mode="kd").resolved_size
        'student'
    """

    mode: Mode
    size: ModelSize | None = None
    source: GraphSource = field(default_factory=GraphSource)
    epochs: int = 10
    batch_size: int | None = None
    eval_batch_size: int | None = None
    learning_rate: float = 1e-3
    seed: int = 0
    out_dir: Path = Path("runs")
    teacher: Path | None = None
    vgae: Path | None = None
    gat: Path | None = None
    prerequisite_epochs: int | None = None
    kd_temperature: float = 4.0
    kd_alpha: float = 0.7
    val_fraction: float = 0.2
    batching: BatchTuning = field(default_factory=BatchTuning)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.size is not None:
            try:
                check_model_size(self.size)
            except UserError as err:
                raise UserError(f"--size: {err}") from None
        if self.mode == "kd" and self.size == "teacher":
            raise UserError("--mode kd trains a student from a teacher; use --size student")
        for option, value in (
            ("--epochs", self.epochs),
            ("--prerequisite-epochs", self.prerequisite_epochs),
            ("--batch-size", self.batch_size),
            ("--eval-batch-size", self.eval_batch_size),
        ):
            if value is not None:
                require_int(option, value, minimum=1)
        check_milestones_reached(self.batching.schedule, self.epochs)
        # Finite too: at --lr inf a run trained to NaN losses, saved its model and exited 0.
        if not 0 < self.learning_rate < math.inf:
            raise UserError(f"--lr must be a finite number > 0, got {self.learning_rate}")
        if not 0 < self.kd_temperature < math.inf:
            raise UserError(
                f"--kd-temperature must be a finite number > 0, got {self.kd_temperature}"
            )
        # Lightning's and NumPy's seeds are unsigned: -1 was a ValueError traceback.
        require_int("--seed", self.seed, minimum=0)
        if not 0.0 < self.val_fraction < 1.0:
            raise UserError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.kd_alpha <= 1.0:
            raise UserError(f"--kd-alpha must be in [0, 1], got {self.kd_alpha}")

    @property
    def resolved_size(self) -> ModelSize:
        return self.size or _DEFAULT_SIZE.get(self.mode, "teacher")

    @classmethod
    def reproducing(cls, path: str | Path, *, out_dir: Path | None = None) -> TrainConfig:
        """The config that re-runs a finished run: `path` is its run directory or config.json.

        Every resolved value is taken as it was, with the batch sizes the run actually used
        (per epoch, so no tuner runs again), its memory budget and the models it depended on.

        Raises:
            UserError: `path` is not a run's config.json.
        """
        path = Path(path)
        config_file = path / "config.json" if path.is_dir() else path
        try:
            saved: Mapping[str, Any] = json.loads(config_file.read_text())
            sizes: list[int] = saved["batch_sizes_per_epoch"] or [saved["train_batch_size"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"--config {path}: not a run's config.json ({err})") from None
        if sizes == [None]:
            raise UserError(
                f"--config {path}: that run ran out of memory in the tuner, before any batch size"
                " was applied: there is no run to repeat"
            )
        try:
            schedule = schedule_from_dict(
                saved["batching"]["schedule"], option="batching.schedule"
            )
            _check_saved_sizes(sizes, saved["epochs"])
            changes = [(e, s) for e, s in enumerate(sizes) if e > 0 and s != sizes[e - 1]]
            used: BatchSizeSchedule = ConstantSchedule(lr_scaling=schedule.lr_scaling)
            if changes:
                used = PiecewiseSchedule(
                    milestones=tuple(changes),
                    cap_at_tuned_max=False,
                    lr_scaling=schedule.lr_scaling,
                )
            config = cls._from_saved(saved, sizes, used, out_dir)
            # The data and the models it depended on are there, or the file names them wrong:
            # found now, so that the message names the file's key, not the option.
            config.source.dataset_name  # noqa: B018 - resolves the dataset folder
            for role in ("teacher", "vgae", "gat"):
                model = getattr(config, role)
                if model is not None and not model.exists():
                    raise UserError(f"--{role} {model}: no such file or folder")
            return config
        except (KeyError, TypeError, AttributeError) as err:
            # A field missing or of the wrong type (a hand-edited or another tool's file).
            raise UserError(
                f"--config {path}: not a run's config.json ({type(err).__name__}: {err})"
            ) from None
        except UserError as err:
            # The checks name the options that set a value; here the file's key set it.
            raise UserError(naming_config_keys(str(err), config_file)) from None

    @classmethod
    def _from_saved(
        cls,
        saved: Mapping[str, Any],
        sizes: list[int],
        used: BatchSizeSchedule,
        out_dir: Path | None,
    ) -> TrainConfig:
        source = saved["source"]
        prerequisites = saved.get("prerequisites", {})
        return cls(
            mode=saved["mode"],
            size=saved["size"],
            source=GraphSource(
                **{
                    **source,
                    "data_dir": None if source["data_dir"] is None else Path(source["data_dir"]),
                    "cache_dir": None
                    if source["cache_dir"] is None
                    else Path(source["cache_dir"]),
                }
            ),
            epochs=saved["epochs"],
            batch_size=sizes[0],
            eval_batch_size=saved["eval_batch_size"],
            learning_rate=saved["learning_rate"],
            seed=saved["seed"],
            out_dir=out_dir or Path(saved["out_dir"]),
            teacher=_path(prerequisites.get("teacher")),
            vgae=_path(prerequisites.get("vgae")),
            gat=_path(prerequisites.get("gat")),
            kd_temperature=saved["kd_temperature"],
            kd_alpha=saved["kd_alpha"],
            val_fraction=saved["val_fraction"],
            # The run's budget again, so that a run that ran out of memory does again.
            batching=BatchTuning(schedule=used, memory_budget=saved.get("memory_budget_bytes")),
        )


def _check_saved_sizes(sizes: object, epochs: object) -> None:
    """The batch sizes a run used, one per epoch, are integers >= 1 (a pydantic traceback
    before) and no more than its epochs."""
    if not (
        isinstance(sizes, list)
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes)
    ):
        raise UserError(
            f"batch_sizes_per_epoch must be a list of integers >= 1, one per epoch, got {sizes!r}"
        )
    if isinstance(epochs, int) and epochs >= 1 and len(sizes) > epochs:
        raise UserError(
            f"batch_sizes_per_epoch holds {len(sizes)} sizes, more than --epochs ({epochs})"
        )


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


@dataclass(frozen=True)
class RunResult:
    """What a run produced; `to_json()` is the CLI's `--json` object.

    `train_batch_size` and `num_train_batches_per_epoch` are the first epoch's (the applied
    size, and the count verified against it); a schedule's later epochs, and a curriculum's
    growing epochs, are in `batch_sizes_per_epoch` and `history`. Out of memory in the tuner,
    no size was applied: the batch sizes and the count are None."""

    mode: Mode
    size: ModelSize
    epochs: int
    run_dir: Path
    val: dict[str, float]
    test: dict[str, dict[str, float]]
    train_batch_size: int | None
    eval_batch_size: int | None
    batch_sizes_per_epoch: list[int]
    num_train_batches_per_epoch: int | None
    seconds: float
    history: list[dict[str, float]]
    tuned_max_batch_size: int | None = None
    tuned_max_eval_batch_size: int | None = None
    safety_factor: float | None = None
    tuner_seconds: float = 0.0
    memo_hit: bool = False
    memory_budget_bytes: int | None = None
    peak_memory_bytes: int | None = None
    device: str = "cpu"
    oom: bool = False
    oom_stage: OomStage | None = None
    # Out of memory in a model this run trained first (`vgae`, `gat`, `teacher`): its stage.
    oom_prerequisite: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "size": self.size,
            "epochs": self.epochs,
            **{f"val_{name}": value for name, value in self.val.items()},
            "test": self.test,
            "train_batch_size": self.train_batch_size,
            "eval_batch_size": self.eval_batch_size,
            "batch_sizes_per_epoch": self.batch_sizes_per_epoch,
            "num_train_batches_per_epoch": self.num_train_batches_per_epoch,
            "tuned_max_batch_size": self.tuned_max_batch_size,
            "tuned_max_eval_batch_size": self.tuned_max_eval_batch_size,
            "safety_factor": self.safety_factor,
            "tuner_seconds": round(self.tuner_seconds, 3),
            "memo_hit": self.memo_hit,
            "memory_budget_bytes": self.memory_budget_bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "device": self.device,
            "oom": self.oom,
            "oom_stage": self.oom_stage,
            "oom_prerequisite": self.oom_prerequisite,
            "seconds": round(self.seconds, 3),
            "run_dir": str(self.run_dir),
        }
