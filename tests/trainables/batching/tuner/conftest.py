"""The tuner tests' data: a small synthetic capture, built once for the package."""

from __future__ import annotations

import pytest

from trainables.batching.system_memory import fix_malloc_thresholds
from trainables.data import CANGraphDataModule, GraphSource


@pytest.fixture(scope="package")
def data(tmp_path_factory: pytest.TempPathFactory) -> CANGraphDataModule:
    # As `run_training` does under a CPU budget, before the data work: blocks the build frees
    # would otherwise stay in the heap, where a later budget's steps reuse them without growing
    # the data segment (a 48 MiB budget then let a 55 MiB NumPy array through).
    fix_malloc_thresholds()
    dm = CANGraphDataModule(
        GraphSource(num_messages=30_000, cache_dir=tmp_path_factory.mktemp("c"))
    )
    dm.setup()
    return dm
