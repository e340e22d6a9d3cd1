from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpo.trainable import epoch_result, final_result, finished_run


def _run(run_dir: Path, **changes: object) -> dict[str, object]:
    return {
        "mode": "normal",
        "epochs": 2,
        "val_f1": 0.8,
        "val_loss": 0.3,
        "test": {"test_01": {"f1": 0.7}},
        "train_batch_size": 32,
        "eval_batch_size": 64,
        "batch_sizes_per_epoch": [32, 64],
        "tuned_max_batch_size": 100,
        "oom": False,
        "oom_stage": None,
        "run_dir": str(run_dir),
        "history": [{"epoch": 0, "val_f1": 0.5, "train_batch_size": 32}],
        **changes,
    }


def test_finished_run_finds_a_trials_complete_metrics_and_skips_half_written_ones(
    tmp_path: Path,
) -> None:
    assert finished_run(tmp_path, "abc") is None
    half = tmp_path / "trial-abc-20261122-000000-aaaaaa"
    half.mkdir()
    (half / "metrics.json").write_text('{"oom": fal')
    assert finished_run(tmp_path, "abc") is None
    done = tmp_path / "trial-abc-20261122-000001-bbbbbb"
    done.mkdir()
    (done / "metrics.json").write_text(json.dumps(_run(done)))
    other = tmp_path / "trial-xyz-20261122-000001-cccccc"
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps(_run(other)))
    found = finished_run(tmp_path, "abc")
    assert found is not None and found["run_dir"] == str(done)


def test_unfinished_run_dirs_are_a_trials_own_stopped_attempts_only(tmp_path: Path) -> None:
    from hpo.trainable import unfinished_run_dirs

    # A trial Ray runs again after --resume removes these; it left them beside its new run.
    stopped = tmp_path / "trial-abc-20261122-000000-aaaaaa"
    stopped.mkdir()
    (stopped / "train.log").write_text("epoch 1\n")
    half = tmp_path / "trial-abc-20261122-000001-bbbbbb"
    half.mkdir()
    (half / "metrics.json").write_text('{"oom": fal')
    done = tmp_path / "trial-abc-20261122-000002-cccccc"
    done.mkdir()
    (done / "metrics.json").write_text(json.dumps(_run(done)))
    for other in ("trial-abcd-20261122-000000-dddddd", "trial-xyz-20261122-000000-eeeeee"):
        (tmp_path / other).mkdir()  # another trial's, never named
    (tmp_path / "trial-abc-notes.txt").write_text("a file, not a run")
    assert unfinished_run_dirs(tmp_path, "abc") == [stopped, half]
    assert unfinished_run_dirs(tmp_path, "nope") == []


def test_final_result_reports_validation_test_and_applied_batch_sizes(tmp_path: Path) -> None:
    result = final_result(_run(tmp_path))
    assert result["val_f1"] == 0.8 and result["test_test_01_f1"] == 0.7
    assert (result["applied_train_batch_size"], result["train_batch_size"]) == (32, 64)
    assert (result["eval_batch_size"], result["tuned_max_batch_size"]) == (64, 100)
    assert result["oom"] is False and result["done"] is True


def test_epoch_result_is_one_based_and_needs_the_study_metric() -> None:
    row = {
        "epoch": 0.0,
        "val_f1": 0.5,
        "train_loss": 0.7,
        "train_batch_size": 16.0,
        "num_train_batches": 4.0,
        "num_train_graphs": 64.0,
        "epoch_seconds": 2.0,  # a finished run's metrics.json has it too: replays report it
    }
    result = epoch_result(row, "val_f1")
    assert (result["epoch"], result["train_batch_size"], result["graphs_per_second"]) == (
        1,
        16,
        32.0,
    )
    with pytest.raises(RuntimeError, match="the study's metric 'val_auroc' was not logged"):
        epoch_result(row, "val_auroc")
