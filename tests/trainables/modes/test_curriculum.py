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
from trainables.models import NUM_NODE_FEATURES, VGAE, VGAEConfig, graph_anomaly_scores
from trainables.modes.curriculum import (
    CurriculumDataModule,
    curriculum_ratio,
    curriculum_sample,
    max_epoch_size,
    score_graphs,
)

LABELS = np.array([0] * 200 + [1] * 10)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> GraphSource:
    """Synthetic traffic giving 180 training graphs (130 normal, 50 attack), cached once."""
    return GraphSource(num_messages=30_000, cache_dir=tmp_path_factory.mktemp("curriculum"))


def _ready(source: GraphSource, *, seed: int = 0, **kwargs: float) -> CurriculumDataModule:
    """A set-up datamodule with random (but seeded) difficulty scores."""
    dm = CurriculumDataModule(source, seed=seed, **kwargs)  # type: ignore[arg-type]
    dm.setup("fit")
    assert dm.train_set is not None
    dm.set_difficulty(np.random.default_rng(seed).exponential(size=len(dm.train_set)))
    return dm


# --- curriculum_ratio -------------------------------------------------------------------


def test_curriculum_ratio_grows_linearly_from_start_to_end() -> None:
    ratios = [curriculum_ratio(e, 10) for e in range(10)]
    assert ratios[0] == 1.0 and ratios[-1] == 10.0
    assert np.allclose(np.diff(ratios), 1.0)
    assert curriculum_ratio(2, 5, start=2.0, end=4.0) == 3.0


def test_curriculum_ratio_one_epoch_and_later_epochs_use_end() -> None:
    assert curriculum_ratio(0, 1, start=1.0, end=6.0) == 6.0
    assert curriculum_ratio(12, 10, start=1.0, end=6.0) == 6.0


@pytest.mark.parametrize(
    ("epoch", "num_epochs", "start", "end", "message"),
    [
        (0, 0, 1.0, 10.0, r"num_epochs must be >= 1, got num_epochs=0"),
        (-1, 5, 1.0, 10.0, r"epoch must be >= 0, got epoch=-1"),
        (0, 5, 0.0, 10.0, r"0 < start <= end, got start=0.0 and end=10.0"),
        (0, 5, 3.0, 2.0, r"0 < start <= end, got start=3.0 and end=2.0"),
    ],
)
def test_curriculum_ratio_validates(
    epoch: int, num_epochs: int, start: float, end: float, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        curriculum_ratio(epoch, num_epochs, start=start, end=end)


# --- curriculum_sample ------------------------------------------------------------------


@pytest.mark.parametrize(("ratio", "num_normal"), [(1.0, 10), (2.54, 25), (7.0, 70), (50.0, 200)])
def test_curriculum_sample_has_every_attack_and_ratio_normals(
    ratio: float, num_normal: int
) -> None:
    difficulty = np.random.default_rng(1).random(len(LABELS))
    sample = curriculum_sample(LABELS, difficulty, ratio=ratio, rng=np.random.default_rng(2))
    assert sample.dtype == np.int64
    assert np.array_equal(sample, np.unique(sample))  # sorted, no duplicates
    assert set(np.flatnonzero(LABELS == 1)) <= set(sample.tolist())
    assert np.count_nonzero(LABELS[sample] == 0) == num_normal


def test_curriculum_sample_draws_harder_graphs_more_often() -> None:
    difficulty = np.random.default_rng(0).exponential(size=len(LABELS))
    counts = np.zeros(len(LABELS))
    for draw in range(400):
        rng = np.random.default_rng((7, draw))
        counts[curriculum_sample(LABELS, difficulty, ratio=5.0, rng=rng)] += 1
    normal = np.flatnonzero(LABELS == 0)
    by_difficulty = normal[np.argsort(difficulty[normal])]
    quartiles = [counts[q].mean() for q in np.split(by_difficulty, 4)]
    assert quartiles == sorted(quartiles) and quartiles[3] > 10 * quartiles[0]
    # A draw, not a top-k: even the easiest quarter is seen now and then.
    assert counts[np.split(by_difficulty, 4)[0]].sum() > 0


def test_curriculum_sample_depends_only_on_difficulty_ranks() -> None:
    difficulty = np.random.default_rng(3).random(len(LABELS))
    first = curriculum_sample(LABELS, difficulty, ratio=3.0, rng=np.random.default_rng(4))
    rescaled = curriculum_sample(
        LABELS, np.exp(difficulty) * 50 + 7, ratio=3.0, rng=np.random.default_rng(4)
    )
    assert np.array_equal(first, rescaled)


def test_curriculum_sample_hardness_zero_ignores_difficulty() -> None:
    easy_first = np.arange(len(LABELS), dtype=np.float64)
    hard_first = easy_first[::-1].copy()
    samples = [
        curriculum_sample(LABELS, d, ratio=3.0, rng=np.random.default_rng(5), hardness=0.0)
        for d in (easy_first, hard_first)
    ]
    assert np.array_equal(samples[0], samples[1])


@pytest.mark.parametrize(
    ("labels", "difficulty", "kwargs", "error", "message"),
    [
        (LABELS, np.zeros(3), {}, ValueError, r"same length, got shapes \(210,\) and \(3,\)"),
        (LABELS.reshape(2, -1), np.zeros((2, 105)), {}, ValueError, "must be 1-D arrays"),
        (np.zeros(5), np.zeros(5), {}, UserError, "curriculum needs attack graphs in the train"),
        (LABELS, np.zeros(210), {"ratio": 0.0}, UserError, r"ratio must be > 0, got ratio=0.0"),
        (LABELS, np.zeros(210), {"hardness": -1.0}, UserError, r"hardness must be >= 0"),
        (LABELS, np.full(210, np.nan), {}, ValueError, "difficulty of normal graphs must be"),
    ],
)
def test_curriculum_sample_validates(
    labels: np.ndarray,
    difficulty: np.ndarray,
    kwargs: dict[str, float],
    error: type[Exception],
    message: str,
) -> None:
    options: dict[str, float] = {"ratio": 1.0, **kwargs}
    with pytest.raises(error, match=message):
        curriculum_sample(labels, difficulty, rng=np.random.default_rng(0), **options)


# --- max_epoch_size ---------------------------------------------------------------------


@pytest.mark.parametrize(("end_ratio", "expected"), [(10.0, 110), (30.0, 210), (2.55, 36)])
def test_max_epoch_size_is_the_largest_sample_of_any_epoch(
    end_ratio: float, expected: int
) -> None:
    difficulty = np.random.default_rng(0).random(len(LABELS))
    sizes = [
        len(
            curriculum_sample(
                LABELS,
                difficulty,
                ratio=curriculum_ratio(epoch, 8, end=end_ratio),
                rng=np.random.default_rng(epoch),
            )
        )
        for epoch in range(8)
    ]
    assert max(sizes) == max_epoch_size(LABELS, end_ratio=end_ratio) == expected == sizes[-1]


def test_max_epoch_size_validates() -> None:
    with pytest.raises(UserError, match=r"end ratio must be > 0, got end_ratio=-1.0"):
        max_epoch_size(LABELS, end_ratio=-1.0)
    with pytest.raises(UserError, match="curriculum needs attack graphs in the training split"):
        max_epoch_size(np.zeros(4, np.int64))


# --- score_graphs -----------------------------------------------------------------------


def test_score_graphs_scores_every_graph_in_order_without_changing_mode(
    source: GraphSource,
) -> None:
    dm = CurriculumDataModule(source, num_epochs=2)
    dm.setup()
    assert dm.train_set is not None and dm.vocab is not None
    torch.manual_seed(0)
    vgae = VGAE(VGAEConfig.preset("student", vocab_size=len(dm.vocab))).train()
    subset = dm.train_set[np.arange(23)]
    scores = score_graphs(vgae, subset, batch_size=8)
    assert vgae.training
    assert scores.shape == (23,) and scores.dtype == np.float64
    one_batch = graph_anomaly_scores(vgae, Batch.from_data_list(list(subset)))
    np.testing.assert_allclose(scores, one_batch.double().numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(UserError, match=r"scoring batch size must be >= 1, got batch_size=0"):
        score_graphs(vgae, subset, batch_size=0)


# --- CurriculumDataModule ---------------------------------------------------------------


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
