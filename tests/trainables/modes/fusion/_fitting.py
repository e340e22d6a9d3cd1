"""Untrained student models, a quiet CPU Trainer and the record of a fitted fusion run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch_geometric.data import Batch

from trainables.data import CANGraphDataModule
from trainables.models import VGAE, GATClassifier, GATConfig, VGAEConfig
from trainables.modes.fusion import FusionModule

VOCAB_SIZE = 8


def cpu_trainer(max_epochs: int = 2, **overrides: object) -> pl.Trainer:
    """A CPU Trainer without logger, checkpoints, progress bar, summary or sanity steps."""
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **overrides,  # type: ignore[arg-type]
    )


def untrained_models(vocab_size: int = VOCAB_SIZE, *, seed: int = 0) -> tuple[VGAE, GATClassifier]:
    """A seeded, untrained student VGAE and GAT, in eval mode."""
    torch.manual_seed(seed)
    vgae = VGAE(VGAEConfig.preset("student", vocab_size=vocab_size))
    gat = GATClassifier(GATConfig.preset("student", vocab_size=vocab_size))
    return vgae.eval(), gat.eval()


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of `module`'s state dict."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@dataclass(frozen=True)
class FittedRun:
    """A fitted `FusionModule`, its data, final metrics, weights before fitting and warnings."""

    module: FusionModule
    datamodule: CANGraphDataModule
    metrics: dict[str, float]
    before: dict[str, dict[str, torch.Tensor]]
    warnings: list[str]


def val_batches(run: FittedRun) -> Iterator[Batch]:
    """The validation batches of `run`'s datamodule."""
    yield from run.datamodule.val_dataloader()
