"""Validation runs each mode's model once per batch and reports what two passes would."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch_geometric.data import Batch

from tests.trainables.models._graphs import VOCAB_SIZE, collate, make_graph
from trainables.models import (
    VGAE,
    GATClassifier,
    GATConfig,
    VGAEConfig,
    reconstruction_targets,
    vgae_loss,
)
from trainables.modes import AutoencoderModule, ClassifierModule, DistillationModule
from trainables.modes.base import DetectionModule


def _gat(seed: int) -> GATClassifier:
    torch.manual_seed(seed)
    return GATClassifier(GATConfig.preset("student", vocab_size=VOCAB_SIZE))


def _classifier() -> DetectionModule:
    return ClassifierModule(_gat(0))


def _distillation() -> DetectionModule:
    return DistillationModule(_gat(0), _gat(1))


def _autoencoder() -> DetectionModule:
    torch.manual_seed(0)
    return AutoencoderModule(VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE)))


MODES = {"classifier": _classifier, "distillation": _distillation, "autoencoder": _autoencoder}


def _batches() -> list[Batch]:
    return [
        collate([make_graph(n, seed=10 * b + n, label=n % 2) for n in (2, 5, 9)]) for b in range(3)
    ]


def _two_pass_loss(module: DetectionModule, batch: Batch) -> torch.Tensor:
    """What `val_loss` means per mode, from a pass of its own."""
    if isinstance(module, AutoencoderModule):
        targets = reconstruction_targets(batch.x, batch.edge_index, vocab_size=VOCAB_SIZE)
        return vgae_loss(module.model(batch), targets).total
    # a distilled student is validated on its plain cross-entropy, not the distillation loss
    return F.cross_entropy(module.model(batch), batch.y)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_validation_outputs_equal_the_loss_and_scores_of_separate_passes(mode: str) -> None:
    module = MODES[mode]().eval()
    with torch.no_grad():
        for batch in _batches():
            loss, score = module.validation_outputs(batch)
            assert torch.allclose(loss, _two_pass_loss(module, batch), atol=1e-6)
            assert torch.allclose(score, module.attack_score(batch), atol=1e-6)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_validation_runs_the_model_once_per_batch(mode: str) -> None:
    module = MODES[mode]()
    forwards = []
    module.model.register_forward_hook(lambda *_: forwards.append(1))
    batches = _batches()
    # A list is a map-style dataset at runtime; torch's stubs only accept `Dataset`.
    loader: DataLoader[Batch] = DataLoader(batches, batch_size=None)  # type: ignore[arg-type]
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (metrics,) = trainer.validate(module, dataloaders=loader, verbose=False)
    assert len(forwards) == len(batches)
    assert set(metrics) >= {"val_loss", f"val_{next(iter(module.val_metrics))}"}


def test_distillation_keeps_its_teacher_in_eval_mode_while_training() -> None:
    module = DistillationModule(_gat(0), _gat(1))
    module.train()
    assert module.model.training and not module.teacher.training  # no dropout in the teacher
    assert not any(p.requires_grad for p in module.teacher.parameters())
