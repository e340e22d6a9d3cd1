"""The tuner tests' data: a small synthetic capture, built once for the package."""

from __future__ import annotations

import pytest

from trainables.data import CANGraphDataModule, GraphSource


@pytest.fixture(scope="package")
def data(tmp_path_factory: pytest.TempPathFactory) -> CANGraphDataModule:
    dm = CANGraphDataModule(
        GraphSource(num_messages=30_000, cache_dir=tmp_path_factory.mktemp("c"))
    )
    dm.setup()
    return dm
