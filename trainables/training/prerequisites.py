"""Models a mode builds on: load a checkpoint, or train it first; and the mode's module factory."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from trainables.batching.schedules import ConstantSchedule
from trainables.data.datamodule import DEFAULT_BATCH_SIZE
from trainables.errors import UserError
from trainables.models import VGAE, GATClassifier, GATConfig, ModelSize, VGAEConfig, load_weights
from trainables.modes.autoencoder import AutoencoderModule
from trainables.modes.base import DetectionModule
from trainables.modes.classifier import ClassifierModule, DistillationModule
from trainables.training.config import Mode, OomStage, TrainConfig

__all__ = ["ModuleFactory", "PrerequisiteOutOfMemory", "load_vgae", "module_factory"]

logger = logging.getLogger("trainables.train")

ModuleFactory = Callable[[], DetectionModule]


class PrerequisiteOutOfMemory(MemoryError):
    """A model the run depends on ran out of memory while it was trained first."""

    def __init__(self, role: str, name: str, stage: OomStage, run_dir: Path) -> None:
        super().__init__(
            f"the {role.upper()} this run depends on ran out of memory ({stage}); see {run_dir}"
        )
        # `name`: the model's key in the run's prerequisites (`vgae`, `gat`, `teacher`).
        self.role, self.name, self.stage, self.run_dir = role, name, stage, run_dir


def module_factory(
    config: TrainConfig, vocab_size: int, run_dir: Path, prerequisites: dict[str, str]
) -> ModuleFactory:
    """A function building fresh, untrained modules of `config`'s mode.

    The models the mode depends on are loaded (or trained) once, here, and shared by every
    module the factory builds: the tuner probes throwaway modules, training gets a fresh one.
    """
    size = config.resolved_size
    lr = config.learning_rate

    def gat(model_size: ModelSize = size) -> GATClassifier:
        return GATClassifier(GATConfig.preset(model_size, vocab_size=vocab_size))

    if config.mode == "normal":
        return lambda: ClassifierModule(gat(), learning_rate=lr)
    if config.mode == "autoencoder":
        return lambda: AutoencoderModule(
            VGAE(VGAEConfig.preset(size, vocab_size=vocab_size)), learning_rate=lr
        )
    if config.mode == "kd":
        teacher = _load_or_train(
            config, "normal", "teacher", config.teacher, vocab_size, run_dir, prerequisites
        )
        assert isinstance(teacher, GATClassifier)
        return lambda: DistillationModule(
            gat(),
            teacher,
            temperature=config.kd_temperature,
            alpha=config.kd_alpha,
            learning_rate=lr,
        )
    if config.mode == "curriculum":
        return lambda: ClassifierModule(gat(), learning_rate=lr)
    vgae = load_vgae(config, vocab_size, run_dir, prerequisites)
    gat_model = _load_or_train(
        config, "normal", size, config.gat, vocab_size, run_dir, prerequisites
    )
    assert isinstance(gat_model, GATClassifier)
    from trainables.modes.fusion import FusionModule

    return lambda: FusionModule(vgae, gat_model, size=size, learning_rate=lr, seed=config.seed)


def load_vgae(
    config: TrainConfig, vocab_size: int, run_dir: Path, prerequisites: dict[str, str]
) -> VGAE:
    """The VGAE curriculum and fusion depend on (`config.vgae`, or trained first)."""
    vgae = _load_or_train(
        config,
        "autoencoder",
        config.resolved_size,
        config.vgae,
        vocab_size,
        run_dir,
        prerequisites,
    )
    assert isinstance(vgae, VGAE)
    return vgae


def _load_or_train(
    config: TrainConfig,
    mode: Mode,
    size: ModelSize,
    checkpoint: Path | None,
    vocab_size: int,
    run_dir: Path,
    prerequisites: dict[str, str],
) -> torch.nn.Module:
    from trainables.training.run import run_training

    role = {"normal": "gat", "autoencoder": "vgae"}[mode]
    name = role if config.mode != "kd" else "teacher"
    option = "--teacher" if config.mode == "kd" else f"--{role}"
    if checkpoint is None:
        logger.info(
            "no %s checkpoint given: training a %s %s (%s mode) first",
            option,
            size,
            role.upper(),
            mode,
        )
        # At most the default batch size, under the run's budget (tuned when the run is, so
        # that it fits): the run's schedule and batch sizes are its own. With them, a tuned
        # student VGAE took the whole set in two batches an epoch and was left at val AUROC
        # 0.19. An HPO study trains its prerequisites at the default size too.
        sub_config = dataclasses.replace(
            config,
            mode=mode,
            size=size,
            epochs=config.prerequisite_epochs or config.epochs,
            batch_size=DEFAULT_BATCH_SIZE,
            eval_batch_size=None,
            teacher=None,
            vgae=None,
            gat=None,
            batching=dataclasses.replace(config.batching, schedule=ConstantSchedule()),
        )
        sub_dir = run_dir / "prerequisites" / f"{mode}-{size}"
        sub_dir.mkdir(parents=True)
        result = run_training(sub_config, run_dir=sub_dir)
        if result.oom:
            assert result.oom_stage is not None
            raise PrerequisiteOutOfMemory(role, name, result.oom_stage, sub_dir)
        checkpoint = sub_dir
    weights, size = _checkpoint_files(checkpoint, mode, size, option=option)
    if role == "vgae":
        model: torch.nn.Module = VGAE(VGAEConfig.preset(size, vocab_size=vocab_size))
    else:
        model = GATClassifier(GATConfig.preset(size, vocab_size=vocab_size))
    load_weights(model, weights)
    prerequisites[name] = str(weights)
    return model.eval()


def _checkpoint_files(
    path: Path, mode: Mode, size: ModelSize, *, option: str
) -> tuple[Path, ModelSize]:
    """`model.pt` of a run directory (or the file itself) and the size its config names;
    `option` (`--teacher`, say) names where the path came from in errors."""
    path = Path(path)
    weights = path / "model.pt" if path.is_dir() else path
    if path.is_dir() and not weights.is_file():
        raise UserError(
            f"{option} {path}: a folder without a model.pt (a run that did not finish, or not a"
            " run directory); give a finished run's directory or a model.pt"
        )
    if not weights.is_file():
        raise UserError(
            f"{option} {path}: no such file or folder (give a run directory or a model.pt)"
        )
    config_file = weights.parent / "config.json"
    if config_file.is_file():
        try:
            saved = json.loads(config_file.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            message = f"checkpoint {path}: {config_file} is not valid JSON ({err})"
            raise UserError(message) from None
        if not isinstance(saved, dict):
            raise UserError(f"checkpoint {path}: {config_file} is not a run's config")
        kind = "a VGAE (autoencoder)" if mode == "autoencoder" else "a GAT"
        saved_mode = saved.get("mode")
        if (mode == "autoencoder") != (saved_mode == "autoencoder") or saved_mode == "fusion":
            raise UserError(f"checkpoint {path} is a {saved_mode} run; expected {kind}")
        size = saved.get("size", size)
    return weights, size
