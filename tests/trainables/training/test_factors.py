from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch

from trainables.batching.adaptive_factor import SafetyFactorStore
from trainables.data.source import GraphSource
from trainables.errors import UserError
from trainables.training import DEFAULT_SAFETY_FACTOR, BatchTuning, TrainConfig
from trainables.training.factors import (
    factor_key,
    factor_store,
    record_factor_outcome,
    resolve_safety_factor,
)

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


def test_resolve_safety_factor_auto_says_when_it_is_the_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # "safety factor auto: 0.900 from <store>" before any outcome read as the store's advice.
    config = _config(tmp_path, safety_factor="auto", memory_budget=64 << 20)
    with caplog.at_level(logging.INFO, logger="trainables.train"):
        resolve_safety_factor(config, CPU)
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("safety factor auto: the default 0.900 (")
    assert "holds no outcome yet for synthetic normal student on cpu" in message
    caplog.clear()
    factor_store(config).record(factor_key(config, CPU), factor=0.9, peak_fraction=None, oom=True)
    with caplog.at_level(logging.INFO, logger="trainables.train"):
        recommended = resolve_safety_factor(config, CPU)
    (message,) = [r.getMessage() for r in caplog.records]
    assert message == f"safety factor auto: {recommended:.3f} from {tmp_path / 'factors.json'}"


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


def _record(config: TrainConfig, **outcome: object) -> bool:
    return record_factor_outcome(config, CPU, factor=0.5, **outcome)  # type: ignore[arg-type]


def test_a_store_that_cannot_be_written_loses_the_outcome_not_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A read-only cache on a cluster: the run had trained and written its model already.
    config = _config(tmp_path, memory_budget=64 << 20)
    config = dataclasses.replace(
        config,
        batching=dataclasses.replace(config.batching, factor_store_path=Path("/proc/x.json")),
    )
    with caplog.at_level(logging.WARNING):
        assert not _record(config, ceiling=100, sizes=[100], peak_fraction=0.5, oom_stage=None)
    assert "not recorded: /proc/x.json cannot be written" in caplog.text


def test_an_outcome_at_the_factors_batch_is_recorded(tmp_path: Path) -> None:
    config = _config(tmp_path, memory_budget=64 << 20)
    store, key = factor_store(config), factor_key(config, CPU)
    # Tuned max 200 x 0.5: the run trained at the factor's 100 and peaked at 45% of the budget.
    assert _record(config, ceiling=100, sizes=[100, 100], peak_fraction=0.45, oom_stage=None)
    assert store.num_records(key) == 1
    assert store.recommend(key, default=0.5) > 0.5  # far below the 90% target: raised
    # Out of memory at the factor's batch: lowered below the factor that failed.
    assert _record(config, ceiling=100, sizes=[100], peak_fraction=None, oom_stage="train")
    assert store.num_records(key) == 2
    assert store.recommend(key, default=1.0) < 0.5


def test_an_outcome_the_factor_did_not_decide_is_not_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path, memory_budget=64 << 20)
    with caplog.at_level(logging.INFO, logger="trainables.train"):
        # The run asked for 10 graphs, below the factor's 100: its low peak is not the factor's.
        assert not _record(config, ceiling=100, sizes=[10, 10], peak_fraction=0.05, oom_stage=None)
        # A schedule grew the batch past the factor's size (up to the tuned max): not its peak,
        # nor its out-of-memory error.
        assert not _record(
            config, ceiling=100, sizes=[100, 200], peak_fraction=0.9, oom_stage=None
        )
        assert not _record(
            config, ceiling=100, sizes=[100, 200], peak_fraction=None, oom_stage="train"
        )
        # Out of memory in the tuner: the factor never applied.
        assert not _record(config, ceiling=None, sizes=[], peak_fraction=None, oom_stage="tuner")
    assert not (tmp_path / "factors.json").exists()
    assert "below the factor's 100" in caplog.text
    assert "past the factor's 100" in caplog.text
    assert "before the factor applied" in caplog.text


def test_out_of_memory_below_the_factors_batch_is_recorded(tmp_path: Path) -> None:
    # A smaller batch than the factor's ran out of memory: the factor's would have too.
    config = _config(tmp_path, memory_budget=64 << 20)
    assert _record(config, ceiling=100, sizes=[10], peak_fraction=None, oom_stage="validation")
    store, key = factor_store(config), factor_key(config, CPU)
    assert store.num_records(key) == 1 and store.recommend(key, default=1.0) < 0.5


def test_an_eval_out_of_memory_at_an_eval_size_asked_for_is_not_the_factors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = dataclasses.replace(_config(tmp_path, memory_budget=64 << 20), eval_batch_size=500)
    with caplog.at_level(logging.INFO, logger="trainables.train"):
        for stage in ("validation", "test"):
            assert not _record(
                config, ceiling=100, sizes=[100], peak_fraction=None, oom_stage=stage
            )
    assert not (tmp_path / "factors.json").exists()
    assert "--eval-batch-size 500, not the factor, set the eval batch" in caplog.text
    # A train OOM at the factor's batch is still the factor's.
    assert _record(config, ceiling=100, sizes=[100], peak_fraction=None, oom_stage="train")


@pytest.mark.parametrize("multiplier", [0.5, float("inf"), float("nan")])
def test_an_eval_multiplier_that_is_not_a_finite_number_from_1_is_named(
    multiplier: float,
) -> None:
    with pytest.raises(UserError, match="--eval-multiplier must be a finite number >= 1"):
        BatchTuning(tune=True, eval_multiplier=multiplier)
