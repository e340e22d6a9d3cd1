from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.trainables.data.test_source import make_dataset
from trainables.data.datamodule import DEFAULT_BATCH_SIZE, CANGraphDataModule, stratified_split
from trainables.data.source import GraphSource
from trainables.errors import UserError


def test_stratified_split_keeps_class_shares_and_is_seeded() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    train, val = stratified_split(labels, val_fraction=0.2, seed=3)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 100
    assert labels[val].sum() == 2 and (labels[val] == 0).sum() == 18
    _, again_val = stratified_split(labels, val_fraction=0.2, seed=3)
    np.testing.assert_array_equal(val, again_val)
    _, other_val = stratified_split(labels, val_fraction=0.2, seed=4)
    assert not np.array_equal(val, other_val)


def test_stratified_split_puts_one_of_a_rare_class_in_each_side() -> None:
    train, val = stratified_split(np.array([0] * 50 + [1, 1]), val_fraction=0.1, seed=0)
    assert {50, 51} & set(val.tolist()) and {50, 51} & set(train.tolist())


def test_datamodule_batches_follow_batch_size(tmp_path: Path) -> None:
    source = GraphSource(
        data_dir=make_dataset(tmp_path / "d", num=3000), window=20, cache_dir=tmp_path / "c"
    )
    dm = CANGraphDataModule(source, batch_size=7, val_fraction=0.25, seed=1)
    dm.setup("fit")
    assert dm.train_set is not None and dm.val_set is not None
    assert len(dm.train_set) + len(dm.val_set) == 300
    loader = dm.train_dataloader()
    assert len(loader) == math.ceil(len(dm.train_set) / 7)
    first = next(iter(loader))
    assert first.num_graphs == 7 and first.x.shape[1] == 11
    assert dm.eval_batch_size == 7
    dm.batch_size = 50  # what Lightning's tuner does
    assert len(dm.train_dataloader()) == math.ceil(len(dm.train_set) / 50)
    assert dm.val_dataloader().batch_size == 50
    dm.eval_batch_size = 64
    assert dm.val_dataloader().batch_size == 64
    tests = dm.test_dataloader()
    assert len(tests) == 1 and tests[0].batch_size == 64
    assert sum(b.num_graphs for b in tests[0]) == 150


def test_datamodule_shuffle_is_seeded(tmp_path: Path) -> None:
    source = GraphSource(
        data_dir=make_dataset(tmp_path / "d"), window=20, cache_dir=tmp_path / "c"
    )

    def first_labels(seed: int) -> list[int]:
        dm = CANGraphDataModule(source, batch_size=16, seed=seed)
        dm.setup()
        return next(iter(dm.train_dataloader())).y.tolist()

    assert first_labels(1) == first_labels(1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "--batch-size must be an integer >= 1, got 0"),
        ({"eval_batch_size": -2}, "--eval-batch-size must be an integer >= 1, got -2"),
        ({"val_fraction": 1.0}, r"--val-fraction must be in \(0, 1\), got 1.0"),
    ],
)
def test_datamodule_validates(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(UserError, match=message):
        CANGraphDataModule(**kwargs)  # type: ignore[arg-type]


def test_datamodule_takes_no_bool_for_a_batch_size() -> None:
    with pytest.raises(UserError, match="--eval-batch-size must be an integer >= 1, got True"):
        CANGraphDataModule(eval_batch_size=True)


def test_datamodule_default_batch_size() -> None:
    dm = CANGraphDataModule()
    assert dm.batch_size == DEFAULT_BATCH_SIZE == dm.eval_batch_size
