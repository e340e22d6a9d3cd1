from __future__ import annotations

import itertools
import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn import global_mean_pool

from tests.trainables.data.helpers import ctt_rows, write_csv
from trainables.batching.tuner import quiet_trainer
from trainables.data.source import GraphSource
from trainables.errors import UserError
from trainables.models import NUM_NODE_FEATURES, VGAE, VGAEConfig
from trainables.modes.curriculum import (
    CurriculumDataModule,
    score_graphs,
)


def _ready(source: GraphSource, *, seed: int = 0, **kwargs: float) -> CurriculumDataModule:
    """A set-up datamodule with random (but seeded) difficulty scores."""
    dm = CurriculumDataModule(source, seed=seed, **kwargs)  # type: ignore[arg-type]
    dm.setup("fit")
    assert dm.train_set is not None
    dm.set_difficulty(np.random.default_rng(seed).exponential(size=len(dm.train_set)))
    return dm


def test_curriculum_datamodule_epochs_differ_and_are_reproducible(source: GraphSource) -> None:
    dm = _ready(source, num_epochs=4, end_ratio=2.0)
    again = _ready(source, num_epochs=4, end_ratio=2.0)
    samples = [dm.epoch_sample(epoch) for epoch in range(4)]
    for epoch, sample in enumerate(samples):
        assert np.array_equal(sample, again.epoch_sample(epoch))
    # Same ratio for epochs 0 of two seeds, yet different samples; and each epoch its own.
    other_seed = _ready(source, seed=1, num_epochs=4, end_ratio=2.0)
    assert other_seed.train_set is not None and dm.train_set is not None
    assert not np.array_equal(
        np.asarray(dm.train_set.indices())[samples[0]],
        np.asarray(other_seed.train_set.indices())[other_seed.epoch_sample(0)],
    )
    normals = [set(s.tolist()) - set(np.flatnonzero(dm.train_set.labels == 1)) for s in samples]
    assert all(a != b for a, b in itertools.pairwise(normals))
    assert [len(s) for s in samples] == sorted(len(s) for s in samples)


def test_curriculum_datamodule_loader_serves_this_epochs_sample(
    source: GraphSource, caplog: pytest.LogCaptureFixture
) -> None:
    dm = _ready(source, num_epochs=5, end_ratio=2.0, batch_size=16)
    assert dm.train_set is not None
    with caplog.at_level(logging.INFO, logger="trainables.modes.curriculum"):
        loader = dm.train_dataloader()
    assert loader.batch_size == 16
    # The loader serves this epoch's sample, shuffled, in the order `train_order` says.
    order = dm.train_order(0)
    assert sorted(order) == sorted(dm.epoch_sample(0))
    assert not np.array_equal(order, np.sort(order))
    assert loader.batch_sampler is not None
    assert np.array_equal(np.concatenate([np.asarray(b) for b in loader.batch_sampler]), order)
    assert sum(batch.num_graphs for batch in loader) == len(order) == 100
    assert "curriculum epoch 1/5: 50 attack + 50 normal graphs (ratio 1:1.0)" in caplog.text


def test_curriculum_datamodule_worst_case_holds_the_largest_graphs(source: GraphSource) -> None:
    dm = CurriculumDataModule(source, num_epochs=3, end_ratio=2.0)
    dm.setup()
    assert dm.train_set is not None
    labels, sizes = dm.train_set.labels, dm.train_set.graph_sizes
    worst = dm.worst_case_dataset()
    assert len(worst) == dm.max_epoch_size == 50 + 100
    assert int(worst.labels.sum()) == 50
    assert list(worst.graph_sizes) == sorted(worst.graph_sizes, reverse=True)
    normal_sizes = np.sort(sizes[labels == 0])[::-1]
    assert np.array_equal(np.sort(worst.graph_sizes[worst.labels == 0])[::-1], normal_sizes[:100])
    # No epoch's sample can weigh more than the worst case.
    dm.set_difficulty(np.random.default_rng(0).random(len(dm.train_set)))
    heaviest = max(sizes[dm.epoch_sample(epoch)].sum() for epoch in range(3))
    assert heaviest <= worst.graph_sizes.sum()


class _MeanPoolClassifier(pl.LightningModule):
    """Smallest model that trains on graph batches: a linear layer on mean-pooled nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(NUM_NODE_FEATURES, 2)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        logits = self.linear(global_mean_pool(batch.x, batch.batch))
        return F.cross_entropy(logits, batch.y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class _RecordSamples(pl.Callback):
    """Records which graphs (storage indices) each epoch's train dataloader serves."""

    def __init__(self) -> None:
        self.samples: list[np.ndarray] = []
        self.loaders: list[object] = []  # kept alive, so their ids stay distinct

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = trainer.train_dataloader
        assert loader is not None
        self.loaders.append(loader)
        self.samples.append(np.asarray(list(loader.sampler)))  # indices into train_set


def _trainer(**kwargs: object) -> pl.Trainer:
    return quiet_trainer(tempfile.gettempdir(), accelerator="cpu", limit_val_batches=0, **kwargs)


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader`")
def test_curriculum_datamodule_trainer_redraws_a_growing_sample_every_epoch(
    source: GraphSource,
) -> None:
    dm = CurriculumDataModule(source, num_epochs=3, end_ratio=2.5, batch_size=32, seed=3)
    dm.setup("fit")
    assert dm.train_set is not None and dm.vocab is not None
    vgae = VGAE(VGAEConfig.preset("student", vocab_size=len(dm.vocab)))
    dm.set_difficulty(score_graphs(vgae, dm.train_set, batch_size=64))
    recorder = _RecordSamples()
    trainer = _trainer(max_epochs=3, reload_dataloaders_every_n_epochs=1, callbacks=[recorder])
    trainer.fit(_MeanPoolClassifier(), datamodule=dm)
    assert [len(s) for s in recorder.samples] == [100, 138, 175]  # 50 attack + 50/88/125
    assert len({id(loader) for loader in recorder.loaders}) == 3  # rebuilt every epoch
    for epoch, served in enumerate(recorder.samples):
        assert np.array_equal(np.sort(served), dm.epoch_sample(epoch))
        assert np.array_equal(served, dm.train_order(epoch))  # known before training
    assert len(max(recorder.samples, key=len)) <= dm.max_epoch_size


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader`")
def test_curriculum_datamodule_refuses_a_trainer_that_keeps_one_loader(
    source: GraphSource,
) -> None:
    dm = _ready(source, num_epochs=2)
    with pytest.raises(RuntimeError, match=r"needs pl.Trainer\(reload_dataloaders_every_n_epoch"):
        _trainer(max_epochs=2).fit(_MeanPoolClassifier(), datamodule=dm)


def test_curriculum_datamodule_needs_difficulty_before_training(source: GraphSource) -> None:
    dm = CurriculumDataModule(source, num_epochs=2)
    with pytest.raises(RuntimeError, match=r"call setup\(\) before"):
        dm.set_difficulty(np.zeros(3))
    dm.setup()
    with pytest.raises(RuntimeError, match=r"call set_difficulty\(scores\) after setup\(\)"):
        dm.train_dataloader()
    with pytest.raises(ValueError, match=r"one score per training graph \(180\), got shape \(3,"):
        dm.set_difficulty(np.zeros(3))
    with pytest.raises(ValueError, match="difficulty scores of normal graphs must be finite"):
        dm.set_difficulty(np.full(180, np.inf))


def test_curriculum_datamodule_setup_rejects_a_split_without_attacks(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split, attack_every in (("train_01_attack_free", 0), ("test_01_known_attack", 11)):
        folder = root / "set_01" / split
        folder.mkdir(parents=True)
        write_csv(folder / "capture.csv", ctt_rows(400, attack_every=attack_every))
    source = GraphSource(data_dir=root, window=20, cache_dir=tmp_path / "cache")
    dm = CurriculumDataModule(source, num_epochs=2)
    with pytest.raises(UserError, match="curriculum needs attack graphs in the training split"):
        dm.setup()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_epochs": 0}, r"num_epochs must be >= 1, got num_epochs=0"),
        ({"num_epochs": 3, "start_ratio": 5.0, "end_ratio": 2.0}, r"0 < start <= end"),
        ({"num_epochs": 3, "hardness": -0.5}, r"hardness must be >= 0, got hardness=-0.5"),
        ({"num_epochs": 3, "batch_size": 0}, r"--batch-size must be an integer >= 1, got 0"),
    ],
)
def test_curriculum_datamodule_validates(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(UserError, match=message):
        CurriculumDataModule(**kwargs)  # type: ignore[arg-type]
