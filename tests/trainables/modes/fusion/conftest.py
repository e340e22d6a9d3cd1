"""The fusion tests' shared run: two epochs on synthetic traffic, fitted once for the package."""

from __future__ import annotations

import warnings

import pytest

from tests.trainables.modes.fusion._fitting import (
    FittedRun,
    cpu_trainer,
    snapshot,
    untrained_models,
)
from trainables.data import CANGraphDataModule, GraphSource
from trainables.modes.fusion import FusionModule


@pytest.fixture(scope="package")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> FittedRun:
    """Two epochs of fusion over untrained student models on 225 synthetic graphs."""
    source = GraphSource(num_messages=30_000, cache_dir=tmp_path_factory.mktemp("cache"))
    datamodule = CANGraphDataModule(source, batch_size=32, seed=0)
    datamodule.setup("fit")
    assert datamodule.vocab is not None
    vgae, gat = untrained_models(len(datamodule.vocab))
    module = FusionModule(vgae, gat, size="student", seed=0)
    before = {name: snapshot(m) for name, m in (("vgae", vgae), ("gat", gat), ("q", module.model))}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = cpu_trainer()
        trainer.fit(module, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return FittedRun(module, datamodule, metrics, before, [str(w.message) for w in caught])
