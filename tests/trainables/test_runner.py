from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.trainables.data.helpers import ctt_rows, write_csv
from trainables.data.source import GraphSource
from trainables.errors import UserError
from trainables.models import GATClassifier, GATConfig, load_weights
from trainables.runner import TrainConfig, run_training


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
    reused = run_training(
        TrainConfig(
            mode="kd", source=source, epochs=1, teacher=teacher_dir, out_dir=tmp_path / "runs"
        )
    )
    assert not (reused.run_dir / "prerequisites").exists()
    saved = json.loads((reused.run_dir / "config.json").read_text())
    assert saved["prerequisites"]["teacher"] == str(teacher_dir / "model.pt")
    assert saved["size"] == "student"


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


def test_run_training_supervised_needs_attack_graphs(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "clean" / "train_01_attack_free"
    folder.mkdir(parents=True)
    write_csv(folder / "a.csv", ctt_rows(2000, seed=1))
    source = GraphSource(data_dir=tmp_path / "data", cache_dir=tmp_path / "c")
    with pytest.raises(
        UserError,
        match="--mode normal is supervised but the training split of clean has no attack graphs",
    ):
        run_training(
            TrainConfig(
                mode="normal", size="student", source=source, epochs=1, out_dir=tmp_path / "runs"
            )
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "supervised"}, "--mode must be one of normal, autoencoder"),
        ({"mode": "normal", "size": "huge"}, "huge"),
        ({"mode": "kd", "size": "teacher"}, "--mode kd trains a student"),
        ({"mode": "normal", "batch_size": 0}, "--batch-size must be an integer >= 1, got 0"),
        ({"mode": "normal", "epochs": 0}, "--epochs must be an integer >= 1, got 0"),
        ({"mode": "normal", "learning_rate": 0.0}, "--lr must be > 0"),
        ({"mode": "kd", "kd_alpha": 1.5}, r"--kd-alpha must be in \[0, 1\]"),
    ],
)
def test_train_config_validates(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        TrainConfig(**kwargs)  # type: ignore[arg-type]
