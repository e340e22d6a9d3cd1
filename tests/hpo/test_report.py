"""`hpo.report` against a real MLflow SQLite store laid out as a study tracks itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from hpo.report import build_report, format_report
from hpo.report.build import _number_or_text
from trainables.errors import UserError

# MLflow's SQLite store configures a SQLAlchemy loader that SQLAlchemy deprecates: not ours.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")

ROOT = Path(__file__).resolve().parents[2]
T0_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Trial:
    trial_id: str
    state: str  # complete, pruned-oom, stopped-early, failed or interrupted
    value: float | None = None
    oom_stage: str = ""
    batch_size: int = 256
    schedule: tuple[tuple[str, Any], ...] = (("schedule_type", "none"),)
    history: tuple[float, ...] = ()


def _params(trial: Trial) -> dict[str, Any]:
    return {
        "batch_size": trial.batch_size,
        "eval_multiplier": 4,
        "safety_factor": 0.75,
        "learning_rate": 0.003,
        **dict(trial.schedule),
        "mode": "normal",
        "size": "small",
        "epochs": 3,
        "dataset": "hcrl_sa",
        "window": 100,
        "applied_train_batch_size": trial.batch_size - 10 if trial.state == "complete" else None,
        "eval_batch_size": trial.batch_size * 4,
        "tuned_max_batch_size": None if trial.oom_stage == "tuner" else 4096,
    }


def _track_study(
    client: MlflowClient,
    space: str,
    name: str,
    *,
    metric: str,
    direction: str,
    start_ms: int,
    trials: list[Trial],
    artifacts: Path,
) -> None:
    """One study as `hpo.tracking` writes it: a parent run, a child run per trial."""
    experiment = client.get_experiment_by_name(f"hpo-{space}")
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(
            f"hpo-{space}", artifact_location=(artifacts / space).as_uri()
        )
    )
    parent = client.create_run(
        experiment_id,
        start_time=start_ms,
        run_name=name,
        tags={
            "hpo.role": "study",
            "hpo.study": name,
            "hpo.space": space,
            "hpo.metric": metric,
            "hpo.direction": direction,
            "hpo.mode": "normal",
            "hpo.dataset": "hcrl_sa",
            "hpo.seed": "0",
            "memory_budget": str(3 << 30),  # bytes, as `StudyTracker` tags it
        },
    )
    parent_id = parent.info.run_id
    for index, trial in enumerate(trials):
        run = client.create_run(
            experiment_id,
            start_time=start_ms + 1000 * (index + 1),
            run_name=trial.trial_id,
            tags={
                "mlflow.parentRunId": parent_id,
                "hpo.role": "trial",
                "hpo.study": name,
                "hpo.trial_id": trial.trial_id,
                "state": trial.state,
                "oom": "true" if trial.state == "pruned-oom" else "false",
                "oom_stage": trial.oom_stage,
            },
        )
        stamp = start_ms + 1000 * (index + 1)
        metrics = [Metric(metric, v, stamp, step) for step, v in enumerate(trial.history)]
        if trial.value is not None:
            metrics.append(Metric(metric, trial.value, stamp + 1, len(trial.history)))
        metrics.append(Metric("train_loss", 0.1, stamp, 0))
        params = [Param(key, str(value)) for key, value in _params(trial).items()]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        status = "FAILED" if trial.state == "failed" else "FINISHED"
        client.set_terminated(run.info.run_id, status=status, end_time=stamp + 500)
    client.set_terminated(parent_id, end_time=start_ms + 100_000)


STEP = (("schedule_type", "step"), ("schedule_step_size", 2), ("schedule_gamma", 2))
NEW_TRIALS = [
    Trial("t0000", "complete", 0.80, batch_size=128, schedule=STEP),
    Trial("t0001", "complete", 0.91, batch_size=512),
    Trial("t0002", "pruned-oom", oom_stage="train", batch_size=4096),
    Trial("t0003", "pruned-oom", oom_stage="tuner", batch_size=8192),
    Trial("t0004", "pruned-oom", oom_stage="train", batch_size=2048),
    Trial("t0005", "failed"),
    # Its best epoch was better than its last: the leaderboard ranks by the last value.
    Trial("t0006", "complete", 0.85, history=(0.5, 0.95)),
    Trial("t0007", "complete", 0.70),
    # Stopped by ASHA after one epoch, and cut off by a stopped driver: neither value ranks.
    Trial("t0008", "stopped-early", 0.97),
    Trial("t0009", "interrupted", 0.99),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLite MLflow store with two curriculum studies and one autoencoder study (min)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    artifacts = root / "artifacts"
    curriculum: dict[str, Any] = {"metric": "val_f1", "direction": "max", "artifacts": artifacts}
    _track_study(
        client,
        "curriculum",
        "curriculum-old",
        start_ms=T0_MS,
        trials=[Trial("t0000", "complete", 0.60), Trial("t0001", "complete", 0.65)],
        **curriculum,
    )
    _track_study(
        client,
        "curriculum",
        "curriculum-new",
        start_ms=T0_MS + 10**6,
        trials=NEW_TRIALS,
        **curriculum,
    )
    _track_study(
        client,
        "autoencoder",
        "autoencoder-1",
        metric="val_loss",
        direction="min",
        start_ms=T0_MS,
        trials=[
            Trial("t0000", "complete", 0.30),
            Trial("t0001", "complete", 0.10),
            Trial("t0002", "pruned-oom", oom_stage="validation"),
            Trial("t0003", "complete", 0.20),
        ],
        artifacts=artifacts,
    )
    yield uri


def _hpo_report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpo.report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_build_report_ranks_the_latest_study_by_its_metric(store: str) -> None:
    report = build_report(MlflowClient(tracking_uri=store), "curriculum", top=3)

    assert report["study"] == "curriculum-new"
    assert (report["metric"], report["direction"]) == ("val_f1", "max")
    # Every trial, as summary.json counts them: 9 ended and 1 interrupted.
    assert report["num_trials"] == 10 and report["num_complete"] == 4
    assert report["num_pruned_oom"] == 3 and report["num_failed"] == 1
    assert report["num_stopped_early"] == 1 and report["num_interrupted"] == 1
    assert report["oom_stages"] == {"train": 2, "tuner": 1}
    board = report["leaderboard"]
    assert [(row["rank"], row["trial_id"], row["metric"]) for row in board] == [
        (1, "t0001", 0.91),
        (2, "t0006", 0.85),
        (3, "t0000", 0.80),
    ]
    assert board[2] == {
        "rank": 3,
        "trial_id": "t0000",
        "run_id": board[2]["run_id"],
        "metric": 0.80,
        "batch_size": 128,
        "applied_train_batch_size": 118,
        "eval_batch_size": 512,
        "tuned_max_batch_size": 4096,
        "safety_factor": 0.75,
        "eval_multiplier": 4,
        "schedule_type": "step",
        "learning_rate": 0.003,
        "schedule_gamma": 2,
        "schedule_step_size": 2,
    }
    best = report["best"]
    assert best["trial_id"] == "t0001" and best["metric"] == 0.91
    assert best["config"] == {
        "batch_size": 512,
        "dataset": "hcrl_sa",
        "epochs": 3,
        "eval_multiplier": 4,
        "learning_rate": 0.003,
        "mode": "normal",
        "safety_factor": 0.75,
        "schedule_type": "none",
        "size": "small",
        "window": 100,
    }
    assert report["settings"] == {
        "mode": "normal",
        "dataset": "hcrl_sa",
        "seed": 0,
        "memory_budget": 3 << 30,
    }


def test_build_report_picks_the_named_study(store: str) -> None:
    report = build_report(MlflowClient(tracking_uri=store), "curriculum", study="curriculum-old")

    assert report["study"] == "curriculum-old" and report["num_trials"] == 2
    assert [row["trial_id"] for row in report["leaderboard"]] == ["t0001", "t0000"]
    assert report["num_pruned_oom"] == 0 and report["oom_stages"] == {}


def test_build_report_ranks_a_min_metric_lowest_first(store: str) -> None:
    report = build_report(MlflowClient(tracking_uri=store), "autoencoder")

    assert [row["metric"] for row in report["leaderboard"]] == [0.10, 0.20, 0.30]
    assert report["best"]["trial_id"] == "t0001"
    assert report["oom_stages"] == {"validation": 1}
    text = format_report(report)
    assert "val_loss, lower is better" in text
    assert "out of memory: 1 trials (validation 1)" in text
    # The budget tag is bytes (given, or the default the study fixed), a number in the report;
    # the header shows a size.
    assert "memory_budget 3GiB" in text
    default = {**report, "settings": {"memory_budget": "default"}}  # a cluster's: per node
    assert "memory_budget default" in format_report(default)


@pytest.mark.parametrize(
    ("space", "study", "top", "error", "message"),
    [
        ("kd", None, 5, UserError, "no studies of space 'kd' in sqlite:///"),
        ("curriculum", "nope", 5, UserError, "no study 'nope' of space 'curriculum' in"),
        ("curriculum", None, 0, ValueError, "top must be >= 1, got top=0"),
    ],
)
def test_build_report_rejects(
    store: str, space: str, study: str | None, top: int, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build_report(MlflowClient(tracking_uri=store), space, study=study, top=top)


def test_hpo_report_json_matches_build_report(store: str) -> None:
    result = _hpo_report("--space", "curriculum", "--top", "2", "--json", "--mlflow-uri", store)

    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report == build_report(MlflowClient(tracking_uri=store), "curriculum", top=2)
    assert set(report) >= {
        "space",
        "study",
        "num_trials",
        "num_pruned_oom",
        "oom_stages",
        "best",
        "leaderboard",
    }
    assert [row["trial_id"] for row in report["leaderboard"]] == ["t0001", "t0006"]


def test_hpo_report_prints_the_named_study_as_text(store: str) -> None:
    result = _hpo_report(
        "--space", "curriculum", "--study", "curriculum-old", "--mlflow-uri", store
    )

    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "study curriculum-old (space curriculum): val_f1, higher is better"
    assert "2 trials: 2 complete, 0 pruned (out of memory), 0 failed" in lines
    assert "out of memory: 0 trials" in lines
    assert lines[-1].startswith("best: val_f1 0.6500 (trial t0001) with {")
    table = lines[lines.index("") + 1 :]
    assert table[0].split()[:3] == ["#", "trial", "val_f1"]
    assert [line.split()[1] for line in table[1:3]] == ["t0001", "t0000"]


def test_hpo_report_without_studies_of_the_space_exits_2(store: str) -> None:
    result = _hpo_report("--space", "kd", "--mlflow-uri", store)

    assert result.returncode == 2
    assert f"error: no studies of space 'kd' in {store}" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    # A mistyped --space said only that there were none: the spaces it holds are named.
    assert "; it holds studies of space autoencoder, curriculum" in result.stderr


def test_hpo_report_without_a_database_exits_2_and_creates_none(tmp_path: Path) -> None:
    study_dir = tmp_path / "studies"
    result = _hpo_report("--space", "curriculum", "--study-dir", str(study_dir))

    assert result.returncode == 2
    assert f"no MLflow database at {study_dir.resolve() / 'mlflow.db'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not study_dir.exists()


def test_hpo_report_names_a_store_it_cannot_read_and_exits_2(tmp_path: Path) -> None:
    garbage = tmp_path / "studies" / "mlflow.db"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not a database\n" * 8)
    result = _hpo_report("--space", "curriculum", "--study-dir", str(garbage.parent))
    assert result.returncode == 2
    assert f"{garbage.resolve()} is not an SQLite database" in result.stderr
    assert garbage.read_bytes() == b"not a database\n" * 8
    bogus = _hpo_report("--space", "curriculum", "--mlflow-uri", "bogus://x")
    assert bogus.returncode == 2 and "MLflow store bogus://x: " in bogus.stderr
    # A store cut short (a full disk, a copy interrupted): SQLite says it is malformed.
    whole = tmp_path / "whole" / "mlflow.db"
    whole.parent.mkdir()
    MlflowClient(tracking_uri=f"sqlite:///{whole}").create_experiment("hpo-curriculum")
    cut = tmp_path / "cut" / "mlflow.db"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    malformed = _hpo_report("--space", "curriculum", "--study-dir", str(cut.parent))
    assert malformed.returncode == 2, malformed.stderr[-2000:]
    assert f"MLflow store sqlite:///{cut.resolve()} cannot be read" in malformed.stderr
    for each in (result, bogus, malformed):
        assert "Traceback" not in each.stderr and each.stdout == ""


def test_hpo_report_reads_the_store_without_importing_ray_or_mlflow() -> None:
    # The store's helpers are the study's own (`hpo.tracking.store`), and a report's "no store
    # here" error comes without the seconds Ray Tune, Optuna or MLflow take to import.
    code = (
        "import sys, hpo.report, hpo.tracking; "
        "print(sorted(m for m in ('ray', 'optuna', 'mlflow', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_hpo_report_with_an_unreachable_server_exits_2_quickly() -> None:
    start = time.monotonic()
    result = _hpo_report("--space", "curriculum", "--mlflow-uri", "http://127.0.0.1:9")

    assert time.monotonic() - start < 20
    assert result.returncode == 2
    assert "--mlflow-uri http://127.0.0.1:9: the tracking server cannot be reached" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_hpo_report_rejects_a_top_below_1(tmp_path: Path) -> None:
    result = _hpo_report("--space", "curriculum", "--top", "0", "--study-dir", str(tmp_path))

    assert result.returncode == 2
    assert "--top must be an integer >= 1, got 0" in result.stderr


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("256", 256),
        ("-3", -3),
        ("0.75", 0.75),
        ("3e-05", 3e-05),
        ("None", None),
        ("True", True),
        ("[1, 2]", [1, 2]),
        ("{not json", "{not json"),
        ("hcrl_sa", "hcrl_sa"),
        ("nan", "nan"),
        ("", ""),
    ],
)
def test_number_or_text_reads_params_back(text: str, value: Any) -> None:
    assert _number_or_text(text) == value
