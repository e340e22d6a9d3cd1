from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainables.data.helpers import ctt_rows, write_csv
from trainables.batching.adaptive_factor import SafetyFactorKey, SafetyFactorStore
from trainables.batching.schedules import schedule_from_dict
from trainables.data.source import GraphSource
from trainables.errors import UserError
from trainables.models import GATClassifier, GATConfig, load_weights
from trainables.training import BatchTuning, TrainConfig, run_training
from trainables.training.run import new_run_dir


@pytest.fixture
def source(tmp_path: Path) -> GraphSource:
    return GraphSource(num_messages=30_000, cache_dir=tmp_path / "cache")


def test_run_training_normal_writes_a_new_run_dir(tmp_path: Path, source: GraphSource) -> None:
    config = TrainConfig(
        mode="normal",
        size="student",
        source=source,
        epochs=2,
        batch_size=16,
        eval_batch_size=40,
        out_dir=tmp_path / "runs",
    )
    first = run_training(config)
    second = run_training(config)
    assert first.run_dir != second.run_dir and first.run_dir.parent == tmp_path / "runs"
    assert first.train_batch_size == 16 and first.eval_batch_size == 40
    saved = json.loads((first.run_dir / "config.json").read_text())
    assert saved["train_batch_size"] == 16 and saved["eval_batch_size"] == 40
    assert saved["mode"] == "normal" and saved["size"] == "student"
    assert saved["source"]["num_messages"] == 30_000
    num_train = 180  # 225 synthetic training graphs, 20% held out
    assert first.num_train_batches_per_epoch == math.ceil(num_train / 16)
    assert [row["num_train_batches"] for row in first.history] == [12, 12]
    assert 0.0 <= first.val["f1"] <= 1.0 and "auroc" in first.val
    assert set(first.test) == {"test_01_known_vehicle_known_attack"}
    model = GATClassifier(GATConfig(**saved["model"]))
    load_weights(model, first.run_dir / "model.pt")  # weights_only, strict
    metrics = json.loads((first.run_dir / "metrics.json").read_text())
    assert metrics["val_f1"] == pytest.approx(first.val["f1"])
    assert len(metrics["history"]) == 2


def test_run_training_autoencoder_reports_auroc(tmp_path: Path, source: GraphSource) -> None:
    result = run_training(
        TrainConfig(
            mode="autoencoder", size="student", source=source, epochs=1, out_dir=tmp_path / "runs"
        )
    )
    payload = result.to_json()
    assert "val_auroc" in payload and "val_f1" not in payload
    assert 0.0 <= payload["val_auroc"] <= 1.0
    # trained on normal graphs only: 180 training graphs minus their attack graphs
    assert result.num_train_batches_per_epoch is not None
    assert result.num_train_batches_per_epoch < math.ceil(180 / 64) + 1


def test_run_training_kd_trains_teacher_first_then_reuses_it(
    tmp_path: Path, source: GraphSource
) -> None:
    result = run_training(
        TrainConfig(mode="kd", source=source, epochs=1, out_dir=tmp_path / "runs")
    )
    teacher_dir = result.run_dir / "prerequisites" / "normal-teacher"
    assert (teacher_dir / "model.pt").is_file()
    assert json.loads((teacher_dir / "config.json").read_text())["size"] == "teacher"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reused = run_training(
            TrainConfig(
                mode="kd", source=source, epochs=1, teacher=teacher_dir, out_dir=tmp_path / "runs"
            )
        )
    # The teacher is in eval mode on purpose: Lightning's warning about it is not shown.
    assert not [w for w in caught if "in eval mode" in str(w.message)]
    assert not (reused.run_dir / "prerequisites").exists()
    saved = json.loads((reused.run_dir / "config.json").read_text())
    assert saved["prerequisites"]["teacher"] == str(teacher_dir / "model.pt")
    assert saved["size"] == "student"


def test_curriculum_run_verifies_each_epochs_sample_against_its_batch_size(
    tmp_path: Path, source: GraphSource
) -> None:
    # The loader serves the whole training set through a sampler of the epoch's sample: the
    # batches per epoch are ceil(sample / batch size), not ceil(training set / batch size).
    result = run_training(
        TrainConfig(
            mode="curriculum",
            size="student",
            source=source,
            epochs=2,
            batch_size=16,
            out_dir=tmp_path / "runs",
        )
    )
    first, last = result.history
    assert first["num_train_graphs"] < last["num_train_graphs"] <= 180
    for row in result.history:
        assert row["num_train_batches"] == math.ceil(row["num_train_graphs"] / 16)
        # Kept with the run: a study that reads the run back reports its real throughput.
        assert 0 < row["epoch_seconds"] < result.seconds


def test_run_training_rejects_mismatched_checkpoints(tmp_path: Path, source: GraphSource) -> None:
    gat_run = run_training(
        TrainConfig(
            mode="normal", size="student", source=source, epochs=1, out_dir=tmp_path / "runs"
        )
    )
    with pytest.raises(UserError, match=r"is a normal run; expected a VGAE"):
        run_training(
            TrainConfig(
                mode="curriculum",
                size="student",
                source=source,
                epochs=1,
                vgae=gat_run.run_dir,
                out_dir=tmp_path / "runs",
            )
        )
    bare = tmp_path / "student.pt"
    torch.save(torch.load(gat_run.run_dir / "model.pt", weights_only=True), bare)
    with pytest.raises(UserError, match=r"student\.pt.*(missing keys|shape mismatch)"):
        run_training(
            TrainConfig(
                mode="kd", source=source, epochs=1, teacher=bare, out_dir=tmp_path / "runs"
            )
        )


@pytest.mark.parametrize(
    ("mode", "attack_every", "message"),
    [
        ("normal", 0, "--mode normal is supervised but the training split of clean has no attack"),
        ("autoencoder", 1, "--mode autoencoder trains on normal graphs but the training split"),
    ],
)
def test_run_training_needs_graphs_its_mode_trains_on(
    tmp_path: Path, mode: str, attack_every: int, message: str
) -> None:
    folder = tmp_path / "data" / "clean" / "train_01_attack_free"
    folder.mkdir(parents=True)
    write_csv(folder / "a.csv", ctt_rows(2000, seed=1, attack_every=attack_every))
    source = GraphSource(data_dir=tmp_path / "data", cache_dir=tmp_path / "c")
    with pytest.raises(UserError, match=message):
        run_training(
            TrainConfig(
                mode=mode,  # type: ignore[arg-type]
                size="student",
                source=source,
                epochs=1,
                out_dir=tmp_path / "runs",
            )
        )
    assert not list((tmp_path / "runs").glob("*"))  # not even an empty run directory


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "supervised"}, "--mode must be one of normal, autoencoder"),
        ({"mode": "normal", "size": "huge"}, "huge"),
        ({"mode": "kd", "size": "teacher"}, "--mode kd trains a student"),
        ({"mode": "normal", "batch_size": 0}, "--batch-size must be an integer >= 1, got 0"),
        ({"mode": "normal", "epochs": 0}, "--epochs must be an integer >= 1, got 0"),
        ({"mode": "normal", "learning_rate": 0.0}, "--lr must be a finite number > 0"),
        # Trained to NaN losses, saved its model and exited 0.
        ({"mode": "normal", "learning_rate": math.inf}, "--lr must be a finite number > 0"),
        ({"mode": "kd", "kd_temperature": math.inf}, "--kd-temperature must be a finite"),
        # A ValueError traceback from Lightning's seed_everything.
        ({"mode": "normal", "seed": -1}, "--seed must be an integer >= 0, got -1"),
        ({"mode": "kd", "kd_alpha": 1.5}, r"--kd-alpha must be in \[0, 1\]"),
    ],
)
def test_train_config_validates(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["epochs", "prerequisite_epochs", "batch_size", "seed"])
def test_train_config_takes_no_bool_for_a_count(field: str) -> None:
    # Python takes True for the integer 1, and so did these checks (not the seed's).
    with pytest.raises(UserError, match=r"must be an integer >= [01], got True"):
        TrainConfig(mode="normal", **{field: True})  # type: ignore[arg-type]


def test_an_out_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    # A read-only --out was a PermissionError traceback. (As root no folder is read-only: a
    # name too long for the file system fails the same way.)
    out = tmp_path / ("x" * 300)
    with pytest.raises(UserError, match=r"--out .*: cannot make a run folder there \(File name"):
        new_run_dir(out, "normal-student")


def tuned(source: GraphSource, tmp_path: Path, **batching: Any) -> TrainConfig:
    return TrainConfig(
        mode="normal",
        size="student",
        source=source,
        epochs=2,
        out_dir=tmp_path / "runs",
        batching=BatchTuning(tune=True, **batching),
    )


def test_tuned_run_applies_the_factor_exactly_once(tmp_path: Path, source: GraphSource) -> None:
    result = run_training(tuned(source, tmp_path, memory_budget=48 << 20, safety_factor=0.5))
    assert result.tuned_max_batch_size is not None and result.tuned_max_eval_batch_size
    applied = max(1, math.floor(result.tuned_max_batch_size * 0.5))
    assert result.train_batch_size == applied == result.batch_sizes_per_epoch[0]
    assert result.eval_batch_size == min(2 * applied, result.tuned_max_eval_batch_size)
    for row in result.history:
        assert row["train_batch_size"] == applied
        assert row["num_train_batches"] == math.ceil(180 / applied) > 1
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["train_batch_size"] == applied and saved["safety_factor"] == 0.5
    assert saved["tuned_max_batch_size"] == result.tuned_max_batch_size
    assert not result.oom and result.tuner_seconds > 0
    # Measured against the budget, as the budget counts memory: growth of the data segment. It
    # can be 0 here, where earlier tests left free blocks in this process's heap that training's
    # small allocations reuse (the budget does not count them either); test_budget checks peaks.
    assert result.peak_memory_bytes is not None and result.memory_budget_bytes == 48 << 20
    assert 0 <= result.peak_memory_bytes <= result.memory_budget_bytes


def test_tuned_run_memo_skips_the_tuner(
    tmp_path: Path, source: GraphSource, caplog: pytest.LogCaptureFixture
) -> None:
    first = run_training(tuned(source, tmp_path, memory_budget=64 << 20))
    with caplog.at_level(logging.INFO, logger="trainables.train"):
        second = run_training(
            tuned(source, tmp_path, memory_budget=64 << 20, safety_factor=0.7, eval_multiplier=1.0)
        )
    assert not first.memo_hit and second.memo_hit
    # Before training, as the tuner's process has (`warm_up`), in the memo hit's one line.
    (hit,) = [r.getMessage() for r in caplog.records if "frontier memo hit" in r.getMessage()]
    assert re.search(r"max eval batch \d+, warmed up in \d+\.\d\d s$", hit), hit
    assert second.tuned_max_batch_size == first.tuned_max_batch_size
    assert second.tuner_seconds < 0.5
    assert second.tuned_max_eval_batch_size is not None and second.train_batch_size is not None
    assert second.eval_batch_size == min(second.train_batch_size, second.tuned_max_eval_batch_size)


def test_default_budget_fixed_by_the_caller_is_the_budget_and_keys_the_memo(
    tmp_path: Path, source: GraphSource
) -> None:
    # An HPO study fixes the default budget once, so trials that see different free memory share
    # one memo key; the factor store still files the outcome under "default budget" (0).
    store = tmp_path / "factors.json"
    fixed = dataclasses.replace(
        tuned(source, tmp_path, default_budget=64 << 20, factor_store_path=store), epochs=1
    )
    first, second = run_training(fixed), run_training(fixed)
    assert first.memory_budget_bytes == second.memory_budget_bytes == 64 << 20
    assert not first.memo_hit and second.memo_hit
    default_key = SafetyFactorKey("synthetic", "normal", "student", "cpu", 0)
    assert SafetyFactorStore(store).num_records(default_key) == 2


def test_tuned_run_keeps_a_smaller_batch_size_asked_for_and_caps_a_larger_one(
    tmp_path: Path, source: GraphSource
) -> None:
    # The search's train batch size: kept when it fits, capped at tuned max x factor when not.
    memo, factors = tmp_path / "frontier.json", tmp_path / "factors.json"
    small = dataclasses.replace(
        tuned(
            source,
            tmp_path,
            memory_budget=64 << 20,
            safety_factor=0.5,
            memo_path=memo,
            factor_store_path=factors,
        ),
        batch_size=5,
        epochs=1,
    )
    key = SafetyFactorKey("synthetic", "normal", "student", "cpu", 64 << 20)
    kept = run_training(small)
    assert kept.tuned_max_batch_size is not None
    ceiling = max(1, math.floor(kept.tuned_max_batch_size * 0.5))
    assert ceiling > 5 and kept.train_batch_size == 5
    assert kept.history[0]["num_train_batches"] == math.ceil(180 / 5)
    # Its peak at 5 graphs says nothing about what the factor's batch takes: not recorded.
    assert SafetyFactorStore(factors).num_records(key) == 0
    capped = run_training(dataclasses.replace(small, batch_size=100_000))
    assert capped.memo_hit and capped.train_batch_size == ceiling
    assert SafetyFactorStore(factors).num_records(key) == 1


def test_tuned_run_explicit_eval_batch_size_wins(tmp_path: Path, source: GraphSource) -> None:
    config = dataclasses.replace(
        tuned(source, tmp_path, memory_budget=64 << 20), eval_batch_size=7, epochs=1
    )
    assert run_training(config).eval_batch_size == 7


def test_run_follows_a_step_schedule(
    tmp_path: Path, source: GraphSource, caplog: pytest.LogCaptureFixture
) -> None:
    schedule = schedule_from_dict({"type": "step", "step_size": 1, "gamma": 2})
    config = TrainConfig(
        mode="normal",
        size="student",
        source=source,
        epochs=3,
        batch_size=8,
        out_dir=tmp_path / "runs",
        batching=BatchTuning(schedule=schedule),
    )
    with caplog.at_level(logging.INFO):
        result = run_training(config)
    assert result.batch_sizes_per_epoch == [8, 16, 32]
    assert [row["train_batch_size"] for row in result.history] == [8, 16, 32]
    assert [row["num_train_batches"] for row in result.history] == [23, 12, 6]
    # The JSON's pair is the first epoch's: the applied size and its count (it paired 8 with 6).
    assert (result.train_batch_size, result.num_train_batches_per_epoch) == (8, 23)
    assert "epoch 2/3: train batch size 8 -> 16" in caplog.text  # numbered as epoch lines are


def test_auto_factor_comes_from_the_adaptive_store(tmp_path: Path, source: GraphSource) -> None:
    store = SafetyFactorStore(tmp_path / "factors.json")
    key = SafetyFactorKey(
        dataset="synthetic",
        mode="normal",
        model_size="student",
        device_type="cpu",
        budget_bytes=64 << 20,
    )
    for _ in range(3):
        store.record(key, factor=0.9, peak_fraction=None, oom=True)
    recommended = store.recommend(key, default=0.9)
    assert recommended < 0.9
    result = run_training(
        tuned(
            source,
            tmp_path,
            memory_budget=64 << 20,
            safety_factor="auto",
            factor_store_path=tmp_path / "factors.json",
        )
    )
    assert result.safety_factor == pytest.approx(recommended)
    assert store.num_records(key) == 4  # the run's outcome was recorded


def test_reading_the_frozen_config_back_reproduces_the_run(
    tmp_path: Path, source: GraphSource
) -> None:
    schedule = schedule_from_dict({"type": "step", "step_size": 1, "gamma": 2})
    config = dataclasses.replace(
        tuned(source, tmp_path, memory_budget=64 << 20, safety_factor=0.25, schedule=schedule),
        epochs=3,
    )
    first = run_training(config)
    again = run_training(TrainConfig.reproducing(first.run_dir, out_dir=tmp_path / "again"))
    assert again.tuned_max_batch_size is None  # no tuner: the sizes used are replayed
    assert again.memory_budget_bytes == first.memory_budget_bytes == 64 << 20
    assert again.batch_sizes_per_epoch == first.batch_sizes_per_epoch
    assert again.eval_batch_size == first.eval_batch_size
    assert [r["num_train_batches"] for r in again.history] == [
        r["num_train_batches"] for r in first.history
    ]
    assert again.val == pytest.approx(first.val)
    with pytest.raises(UserError, match=r"--config .*: not a run's config.json"):
        TrainConfig.reproducing(tmp_path / "nothing-here")
    # A field missing or of the wrong type: KeyError and TypeError tracebacks before.
    saved = json.loads((first.run_dir / "config.json").read_text())
    for damage in (
        {"batching": None},
        {"mode": None, "source": "x"},
        {"memory_budget_bytes": "4GiB"},
        {"source": {**saved["source"], "colour": "red"}},
    ):
        edited = tmp_path / "edited.json"
        edited.write_text(json.dumps({**saved, **damage}))
        with pytest.raises(UserError, match=r"--config .*edited.json: not a run's config.json"):
            TrainConfig.reproducing(edited)
    missing = {k: v for k, v in saved.items() if k != "mode"}
    (tmp_path / "edited.json").write_text(json.dumps(missing))
    with pytest.raises(UserError, match=r"not a run's config.json \(KeyError: 'mode'\)"):
        TrainConfig.reproducing(tmp_path / "edited.json")


def test_a_damaged_factor_store_stops_a_tuned_run_before_training(
    tmp_path: Path, source: GraphSource
) -> None:
    store = tmp_path / "factors.json"
    store.write_text('{"version": 1, "entr')
    config = tuned(
        source, tmp_path, memory_budget=64 << 20, safety_factor=0.8, factor_store_path=store
    )
    with pytest.raises(UserError, match=r"factors\.json: not valid JSON"):
        run_training(config)
    assert not list((tmp_path / "runs").glob("*/model.pt"))  # no training ran, to be lost
    assert store.read_text() == '{"version": 1, "entr'
    # Nor the VGAE curriculum trains first: the store was read before it, no folder is left.
    with pytest.raises(UserError, match=r"factors\.json: not valid JSON"):
        run_training(dataclasses.replace(config, mode="curriculum"))
    assert not list((tmp_path / "runs").glob("curriculum-*"))


def test_the_eval_size_follows_the_first_epochs_train_size(
    tmp_path: Path, source: GraphSource
) -> None:
    # A schedule capped below the applied size trains its first epoch at the cap: the eval size
    # is the multiplier times that, not times a size no epoch trained at.
    schedule = schedule_from_dict(
        {"type": "step", "step_size": 1, "gamma": 2, "max_batch_size": 6}
    )
    config = dataclasses.replace(
        tuned(source, tmp_path, memory_budget=64 << 20, safety_factor=1.0, schedule=schedule),
        epochs=1,
    )
    result = run_training(config)
    assert result.tuned_max_batch_size is not None and result.tuned_max_batch_size > 6
    assert result.tuned_max_eval_batch_size is not None
    assert result.batch_sizes_per_epoch == [6] and result.train_batch_size == 6
    assert result.eval_batch_size == min(12, result.tuned_max_eval_batch_size)
