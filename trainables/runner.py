"""One training run of any mode, as plain functions: what the CLI and every HPO trial call.

`run_training(config)` builds the data and the model, trains (first training the models a mode
depends on when no checkpoint is given), tests, and writes a new run directory that is never an
earlier run's: `model.pt` (a state dict), `config.json` (every resolved value, the batch sizes
actually used included) and `metrics.json`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, get_args

import pytorch_lightning as pl
import torch

from trainables.cli import is_interactive
from trainables.data.datamodule import CANGraphDataModule
from trainables.data.source import GraphSource
from trainables.errors import UserError
from trainables.models import (
    VGAE,
    GATClassifier,
    GATConfig,
    ModelSize,
    VGAEConfig,
    check_model_size,
    load_weights,
)
from trainables.modes.autoencoder import AutoencoderModule
from trainables.modes.base import DetectionModule
from trainables.modes.classifier import ClassifierModule, DistillationModule
from trainables.modes.logging import EpochLogLine

__all__ = ["MODES", "Mode", "RunResult", "TrainConfig", "run_training"]

logger = logging.getLogger("trainables.train")

Mode = Literal["normal", "autoencoder", "curriculum", "kd", "fusion"]
MODES: tuple[Mode, ...] = get_args(Mode)
_DEFAULT_SIZE: dict[str, ModelSize] = {"kd": "student"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on.

    Args:
        mode: `normal`, `autoencoder`, `curriculum`, `kd` or `fusion`.
        size: `teacher` or `student` (default: student for kd, teacher otherwise).
        source: Where graphs come from (default: synthetic traffic).
        epochs: Training epochs (default 10).
        batch_size: Training batch size (default 64).
        eval_batch_size: Validation/test batch size (default: `batch_size`).
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

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.size is not None:
            check_model_size(self.size)
        if self.mode == "kd" and self.size == "teacher":
            raise UserError("--mode kd trains a student from a teacher; use --size student")
        for option, value in (
            ("--epochs", self.epochs),
            ("--prerequisite-epochs", self.prerequisite_epochs),
            ("--batch-size", self.batch_size),
            ("--eval-batch-size", self.eval_batch_size),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UserError(f"{option} must be an integer >= 1, got {value!r}")
        if not self.learning_rate > 0:
            raise UserError(f"--lr must be > 0, got {self.learning_rate}")
        if not self.kd_temperature > 0:
            raise UserError(f"--kd-temperature must be > 0, got {self.kd_temperature}")
        if not 0.0 <= self.kd_alpha <= 1.0:
            raise UserError(f"--kd-alpha must be in [0, 1], got {self.kd_alpha}")

    @property
    def resolved_size(self) -> ModelSize:
        return self.size or _DEFAULT_SIZE.get(self.mode, "teacher")


@dataclass(frozen=True)
class RunResult:
    """What a run produced; `to_json()` is the CLI's `--json` object."""

    mode: Mode
    size: ModelSize
    epochs: int
    run_dir: Path
    val: dict[str, float]
    test: dict[str, dict[str, float]]
    train_batch_size: int
    eval_batch_size: int
    num_train_batches_per_epoch: int
    seconds: float
    history: list[dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "size": self.size,
            "epochs": self.epochs,
            **{f"val_{name}": value for name, value in self.val.items()},
            "test": self.test,
            "train_batch_size": self.train_batch_size,
            "eval_batch_size": self.eval_batch_size,
            "num_train_batches_per_epoch": self.num_train_batches_per_epoch,
            "seconds": round(self.seconds, 3),
            "run_dir": str(self.run_dir),
        }


class _History(pl.Callback):
    """Per-epoch metrics and the number of training batches each epoch really had."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self._num_batches = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._num_batches = int(trainer.num_training_batches)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        row = {
            name: float(v)
            for name, v in trainer.callback_metrics.items()
            if name.startswith(("train_", "val_"))
        }
        row["epoch"] = trainer.current_epoch
        row["num_train_batches"] = self._num_batches
        row["train_batch_size"] = int(trainer.datamodule.batch_size)  # type: ignore[attr-defined]
        self.epochs.append(row)


def new_run_dir(out_dir: Path, name: str) -> Path:
    """A fresh directory `<out_dir>/<name>-<UTC time>-<random>`; never an existing one."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out_dir) / f"{name}-{stamp}-{secrets.token_hex(3)}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def run_training(
    config: TrainConfig, *, run_dir: Path | None = None, callbacks: Sequence[pl.Callback] = ()
) -> RunResult:
    """Train, validate and test one model as `config` says; see the module docstring."""
    start = time.perf_counter()
    size = config.resolved_size
    run_dir = run_dir or new_run_dir(config.out_dir, f"{config.mode}-{size}")
    logger.info("run %s: mode %s, size %s, %d epochs", run_dir, config.mode, size, config.epochs)
    pl.seed_everything(config.seed, verbose=False)
    datamodule = _datamodule(config)
    datamodule.setup("fit")
    assert datamodule.vocab is not None and datamodule.train_set is not None
    if config.mode != "autoencoder" and not datamodule.train_set.labels.any():
        raise UserError(
            f"--mode {config.mode} is supervised but the training split of "
            f"{config.source.dataset_name} has no attack graphs"
        )
    prerequisites: dict[str, str] = {}
    module = _module(config, len(datamodule.vocab), datamodule, run_dir, prerequisites)

    history = _History()
    trainer = pl.Trainer(
        max_epochs=config.epochs,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=is_interactive(),
        num_sanity_val_steps=0,
        reload_dataloaders_every_n_epochs=1 if config.mode == "curriculum" else 0,
        callbacks=[history, EpochLogLine(config.epochs), *callbacks],
    )
    trainer.fit(module, datamodule=datamodule)
    val = {
        name.removeprefix("val_"): float(value)
        for name, value in trainer.callback_metrics.items()
        if name.startswith("val_")
    }
    if datamodule.test_sets:
        module.test_split_names = list(datamodule.test_sets)
        trainer.test(module, datamodule=datamodule, verbose=False)
    model = module.model
    torch.save(model.state_dict(), run_dir / "model.pt")

    num_batches = (
        history.epochs[-1]["num_train_batches"]
        if history.epochs
        else math.ceil(len(datamodule.train_set) / datamodule.batch_size)
    )
    result = RunResult(
        mode=config.mode,
        size=size,
        epochs=config.epochs,
        run_dir=run_dir,
        val=val,
        test=module.test_results,
        train_batch_size=datamodule.batch_size,
        eval_batch_size=datamodule.eval_batch_size,
        num_train_batches_per_epoch=int(num_batches),
        seconds=time.perf_counter() - start,
        history=history.epochs,
    )
    _write_json(
        run_dir / "config.json",
        {
            **_config_json(config),
            "size": size,
            "dataset": config.source.dataset_name,
            "vocab_size": len(datamodule.vocab),
            "model": dataclasses.asdict(model.config),  # type: ignore[call-overload]
            "train_batch_size": result.train_batch_size,
            "eval_batch_size": result.eval_batch_size,
            "prerequisites": prerequisites,
        },
    )
    _write_json(run_dir / "metrics.json", {**result.to_json(), "history": history.epochs})
    logger.info(
        "run %s done in %.1f s: %s",
        run_dir,
        result.seconds,
        " ".join(f"val_{k} {v:.4f}" for k, v in val.items()),
    )
    return result


def _datamodule(config: TrainConfig) -> CANGraphDataModule:
    kwargs: dict[str, Any] = dict(
        batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        val_fraction=config.val_fraction,
        seed=config.seed,
    )
    if config.mode == "curriculum":
        from trainables.modes.curriculum import CurriculumDataModule

        return CurriculumDataModule(config.source, num_epochs=config.epochs, **kwargs)
    return CANGraphDataModule(
        config.source, train_on_normal_only=config.mode == "autoencoder", **kwargs
    )


def _module(
    config: TrainConfig,
    vocab_size: int,
    datamodule: CANGraphDataModule,
    run_dir: Path,
    prerequisites: dict[str, str],
) -> DetectionModule:
    size = config.resolved_size
    lr = config.learning_rate
    if config.mode == "normal":
        return ClassifierModule(
            GATClassifier(GATConfig.preset(size, vocab_size=vocab_size)), learning_rate=lr
        )
    if config.mode == "autoencoder":
        return AutoencoderModule(
            VGAE(VGAEConfig.preset(size, vocab_size=vocab_size)), learning_rate=lr
        )
    if config.mode == "kd":
        teacher = _prerequisite(
            config, "normal", "teacher", config.teacher, vocab_size, run_dir, prerequisites
        )
        assert isinstance(teacher, GATClassifier)
        return DistillationModule(
            GATClassifier(GATConfig.preset(size, vocab_size=vocab_size)),
            teacher,
            temperature=config.kd_temperature,
            alpha=config.kd_alpha,
            learning_rate=lr,
        )
    vgae = _prerequisite(
        config, "autoencoder", size, config.vgae, vocab_size, run_dir, prerequisites
    )
    assert isinstance(vgae, VGAE)
    if config.mode == "curriculum":
        from trainables.modes.curriculum import CurriculumDataModule, score_graphs

        assert isinstance(datamodule, CurriculumDataModule) and datamodule.train_set is not None
        datamodule.set_difficulty(
            score_graphs(vgae, datamodule.train_set, batch_size=datamodule.eval_batch_size)
        )
        return ClassifierModule(
            GATClassifier(GATConfig.preset(size, vocab_size=vocab_size)), learning_rate=lr
        )
    gat = _prerequisite(config, "normal", size, config.gat, vocab_size, run_dir, prerequisites)
    assert isinstance(gat, GATClassifier)
    from trainables.modes.fusion import FusionModule

    return FusionModule(vgae, gat, size=size, learning_rate=lr, seed=config.seed)


def _prerequisite(
    config: TrainConfig,
    mode: Mode,
    size: ModelSize,
    checkpoint: Path | None,
    vocab_size: int,
    run_dir: Path,
    prerequisites: dict[str, str],
) -> torch.nn.Module:
    """Load the model a mode depends on, or train it first (in `run_dir/prerequisites`)."""
    role = {"normal": "gat", "autoencoder": "vgae"}[mode]
    if checkpoint is None:
        option = "--teacher" if config.mode == "kd" else f"--{role}"
        logger.info(
            "no %s checkpoint given: training a %s %s (%s mode) first",
            option,
            size,
            role.upper(),
            mode,
        )
        sub_config = dataclasses.replace(
            config,
            mode=mode,
            size=size,
            epochs=config.prerequisite_epochs or config.epochs,
            teacher=None,
            vgae=None,
            gat=None,
        )
        sub_dir = run_dir / "prerequisites" / f"{mode}-{size}"
        sub_dir.mkdir(parents=True)
        run_training(sub_config, run_dir=sub_dir)
        checkpoint = sub_dir
    weights, size = _checkpoint_files(checkpoint, mode, size)
    if role == "vgae":
        model: torch.nn.Module = VGAE(VGAEConfig.preset(size, vocab_size=vocab_size))
    else:
        model = GATClassifier(GATConfig.preset(size, vocab_size=vocab_size))
    load_weights(model, weights)
    prerequisites[role if config.mode != "kd" else "teacher"] = str(weights)
    return model.eval()


def _checkpoint_files(path: Path, mode: Mode, size: ModelSize) -> tuple[Path, ModelSize]:
    """`model.pt` of a run directory (or the file itself) and the size its config names."""
    path = Path(path)
    weights = path / "model.pt" if path.is_dir() else path
    if not weights.is_file():
        raise UserError(f"checkpoint {path}: no such file (give a run directory or a model.pt)")
    config_file = weights.parent / "config.json"
    if config_file.is_file():
        saved = json.loads(config_file.read_text())
        kind = "a VGAE (autoencoder)" if mode == "autoencoder" else "a GAT"
        saved_mode = saved.get("mode")
        if (mode == "autoencoder") != (saved_mode == "autoencoder") or saved_mode == "fusion":
            raise UserError(f"checkpoint {path} is a {saved_mode} run; expected {kind}")
        size = saved.get("size", size)
    return weights, size


def _config_json(config: TrainConfig) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
