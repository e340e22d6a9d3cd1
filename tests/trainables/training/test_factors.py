from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainables.batching.adaptive_factor import SafetyFactorStore
from trainables.data.source import GraphSource
from trainables.training import DEFAULT_SAFETY_FACTOR, BatchTuning, TrainConfig
from trainables.training.factors import factor_key, factor_store, resolve_safety_factor

CPU = torch.device("cpu")


def _config(tmp_path: Path, **batching: object) -> TrainConfig:
    return TrainConfig(
        mode="normal",
        size="student",
        source=GraphSource(num_messages=1_000),
        out_dir=tmp_path / "runs",
        batching=BatchTuning(tune=True, factor_store_path=tmp_path / "factors.json", **batching),  # type: ignore[arg-type]
    )


def test_resolve_safety_factor_keeps_a_factor_asked_for(tmp_path: Path) -> None:
    assert resolve_safety_factor(_config(tmp_path, safety_factor=0.55), CPU) == 0.55
    assert not (tmp_path / "factors.json").exists()  # the store is not read, nor created


def test_resolve_safety_factor_auto_reads_what_a_run_recorded(tmp_path: Path) -> None:
    config = _config(tmp_path, safety_factor="auto", memory_budget=64 << 20)
    assert resolve_safety_factor(config, CPU) == DEFAULT_SAFETY_FACTOR  # nothing recorded yet
    # A run records under its key; `auto` then reads that key's recommendation back.
    factor_store(config).record(factor_key(config, CPU), factor=0.9, peak_fraction=None, oom=True)
    recommended = SafetyFactorStore(tmp_path / "factors.json").recommend(
        factor_key(config, CPU), default=1.0
    )
    assert recommended < DEFAULT_SAFETY_FACTOR
    assert resolve_safety_factor(config, CPU) == pytest.approx(recommended)
    # Another budget is another key: nothing recorded there.
    other = _config(tmp_path, safety_factor="auto", memory_budget=128 << 20)
    assert resolve_safety_factor(other, CPU) == DEFAULT_SAFETY_FACTOR


def test_factor_key_is_the_budget_asked_for_or_zero_for_the_default(tmp_path: Path) -> None:
    assert factor_key(_config(tmp_path, memory_budget=64 << 20), CPU).budget_bytes == 64 << 20
    key = factor_key(_config(tmp_path), CPU)
    assert (key.budget_bytes, key.dataset, key.mode, key.model_size, key.device_type) == (
        0,
        "synthetic",
        "normal",
        "student",
        "cpu",
    )
