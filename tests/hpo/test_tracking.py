"""MLflow tracking against a real `mlflow server` on 127.0.0.1, and stores that cannot be used."""

from __future__ import annotations

import dataclasses
import http.server
import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hpo.study import StudyConfig, run_study
from hpo.tracking import check_tracking_uri, default_tracking_uri, ui_command
from hpo.tracking.store import artifact_location, check_server, sqlite_path
from search_spaces import get_space
from trainables.data.source import GraphSource
from trainables.errors import UserError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "server.log").open("w"),
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log = (root / "server.log").read_text()[-3000:]
                pytest.fail(f"mlflow server did not start: {log}")
            time.sleep(0.5)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_study_tracked_on_a_real_mlflow_server(
    mlflow_server: str,
    ray_local: None,
    smoke_source: GraphSource,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = StudyConfig(
        space=get_space("autoencoder").smoke().with_overrides(size="student", epochs=1),
        study_dir=tmp_path / "study",
        source=smoke_source,
        num_samples=2,
        factor_store_path=tmp_path / "factors.json",
        mlflow_uri=mlflow_server,
    )
    summary = run_study(config)
    assert summary["num_complete"] == 2
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the default store
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    experiment = client.get_experiment_by_name("hpo-autoencoder")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], f"tags.`hpo.study` = '{config.name}'")
    roles = sorted(run.data.tags["hpo.role"] for run in runs)
    assert roles == ["study", "trial", "trial"]
    best = next(r for r in runs if r.data.tags.get("hpo.trial_id") == summary["best_trial"])
    assert best.data.metrics["val_auroc"] == pytest.approx(summary["best_value"])
    # Artifacts went through the server (proxied), the model among them.
    assert {f.path for f in client.list_artifacts(best.info.run_id, "model")} == {
        "model/model.pt",
        "model/config.json",
    }
    [version] = client.search_model_versions("name = 'autoencoder-synthetic'")
    assert version.run_id == best.info.run_id
    # Resuming the finished study registers nothing new: a study has one version. It says the
    # study had finished (it said "2 trials of space autoencoder ... (resumed)" and ran none).
    caplog.clear()  # the first run's lines too, where an earlier test set hpo.run to INFO
    with caplog.at_level(logging.INFO, logger="hpo.run"):
        again = run_study(config, resume=True)
    study_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("study ")]
    assert study_lines == [
        f"study {config.name} had finished: 2 of 2 trials ended; nothing to run, its summary is"
        " written again"
    ]
    assert [(row["trial_id"], row["state"]) for row in again["trials"]] == [
        (row["trial_id"], row["state"]) for row in summary["trials"]
    ]
    assert again["mlflow"]["registered_model"] == summary["mlflow"]["registered_model"]
    assert len(client.search_model_versions("name = 'autoencoder-synthetic'")) == 1
    assert ui_command(mlflow_server) == f"open {mlflow_server} in a browser"


def test_unreachable_tracking_server_fails_before_the_study_starts(tmp_path: Path) -> None:
    config = StudyConfig(
        space=get_space("normal"),
        study_dir=tmp_path / "study",
        mlflow_uri=f"http://127.0.0.1:{_free_port()}",
    )
    start = time.monotonic()
    with pytest.raises(UserError, match="the tracking server cannot be reached"):
        run_study(config)
    assert time.monotonic() - start < 30
    assert not config.study_dir.exists()


@pytest.fixture
def answering_server() -> Iterator[tuple[str, list[int]]]:
    """A real HTTP server on 127.0.0.1 whose every GET answers the status in the list."""
    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", status
    finally:
        server.shutdown()
        server.server_close()


def test_check_server_rejects_a_server_error_on_health(
    answering_server: tuple[str, list[int]],
) -> None:
    uri, status = answering_server
    status[0] = 503
    with pytest.raises(UserError, match=rf"--mlflow-uri {uri}: .* not healthy .*answered 503"):
        check_server(uri, hint="unused")


def test_check_server_leaves_a_client_error_to_mlflow(
    answering_server: tuple[str, list[int]],
) -> None:
    # A server that wants a login answers /health with a 4xx: it is there, and MLflow's own
    # request (with the user's credentials) says what the answer means.
    uri, status = answering_server
    for status[0] in (200, 401, 403):
        check_server(uri, hint="unused")


def test_check_server_names_the_hint_when_unreachable() -> None:
    uri = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(UserError, match=rf"{uri}: the tracking server cannot be reached .*; do X"):
        check_server(uri, hint="do X")


def test_unwritable_sqlite_store_fails_clearly(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "mlflow.db").mkdir()  # a directory where the database file should be
    with pytest.raises(UserError, match="cannot write the SQLite store"):
        check_tracking_uri(default_tracking_uri(locked))


def test_default_store_is_one_sqlite_file_under_the_study_root(tmp_path: Path) -> None:
    uri = default_tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    # This environment's mlflow, which works without the virtualenv activated.
    mlflow = Path(sys.executable).parent / "mlflow"
    command, rest = ui_command(uri).split(" ", 1)
    assert rest == f"ui --backend-store-uri {uri}"
    assert (Path.cwd() / command).resolve() == mlflow.resolve() and mlflow.is_file()


def test_sqlite_store_with_options_is_checked_at_its_database_file(tmp_path: Path) -> None:
    # SQLAlchemy options after "?" are not part of the file's name: the write check creates
    # the database MLflow will use, not a stray "mlflow.db?timeout=30" beside it.
    uri = f"{default_tracking_uri(tmp_path)}?timeout=30"
    assert sqlite_path(uri) == tmp_path.resolve() / "mlflow.db"
    assert sqlite_path("http://127.0.0.1:5000") is None
    check_tracking_uri(uri)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mlflow.db"]
    assert (
        artifact_location(uri, "normal")
        == (tmp_path.resolve() / "mlartifacts" / "hpo-normal").as_uri()
    )


def test_a_resumed_study_keeps_the_default_budget_it_started_with(tmp_path: Path) -> None:
    from hpo.tracking import StudyTracker

    config = StudyConfig(space=get_space("normal"), study_dir=tmp_path / "s")
    StudyTracker(config.tracking_uri, config).record_budget(3 << 30)
    resumed = StudyTracker(config.tracking_uri, config, resume=True)
    assert resumed.recorded_budget() == 3 << 30  # not the free memory of the resume's day
    assert resumed.study_tags["memory_budget"] == str(3 << 30)  # its new trials' runs say so
    given = dataclasses.replace(config, memory_budget=1 << 30)
    assert StudyTracker(given.tracking_uri, given, resume=True).recorded_budget() is None


def test_the_study_run_holds_the_searched_ranges_as_set_writes_them(tmp_path: Path) -> None:
    from hpo.tracking import StudyTracker
    from search_spaces.overrides import apply_overrides

    space = apply_overrides(
        get_space("normal"), ["batch_size=16..1024", "schedule_type=none,step", "size=student"]
    )
    config = StudyConfig(space=space, study_dir=tmp_path / "s")
    tracker = StudyTracker(config.tracking_uri, config)
    params = tracker.client.get_run(tracker.parent_id).data.params
    assert params["space.batch_size"] == "16..1024:log"
    assert params["space.safety_factor"] == "0.3..1.0"
    assert params["space.schedule_type"] == "none,step"
    assert params["space.schedule_max_batch_size"] == "64..8192:log"
    assert params["size"] == "student" and "space.size" not in params
    # What a range prints is what --set reads back.
    assert apply_overrides(get_space("normal"), [f"batch_size={params['space.batch_size']}"]) == (
        apply_overrides(get_space("normal"), ["batch_size=16..1024:log"])
    )


def test_trial_runs_end_in_their_state_and_finishing_deletes_only_those_never_to_run(
    tmp_path: Path,
) -> None:
    from hpo.report import build_report
    from hpo.summary import build_summary, trial_row
    from hpo.tracking import StudyTracker

    config = StudyConfig(space=get_space("normal"), study_dir=tmp_path / "s")
    tracker = StudyTracker(config.tracking_uri, config)
    ended = tracker.start_trial("aaaa0001", {"batch_size": 8})
    tracker.end_trial("aaaa0001", {"batch_size": 8}, {"val_f1": 0.5, "done": True}, error=False)
    stopped = tracker.start_trial("cccc0003", {"batch_size": 32})
    tracker.end_trial(
        "cccc0003", {"batch_size": 32}, {"val_f1": 0.7, "trained_to_end": False}, error=False
    )
    no_fit = tracker.start_trial("dddd0004", {"batch_size": 64})
    out_of_memory_in_the_tuner = {
        "val_f1": float("-inf"),
        "oom": True,
        "oom_stage": "tuner",
        "applied_train_batch_size": None,
        "eval_batch_size": None,
    }
    tracker.end_trial("dddd0004", {"batch_size": 64}, out_of_memory_in_the_tuner, error=False)
    cut_off = tracker.start_trial("bbbb0002", {"batch_size": 16})
    # Neither is in the summary (say, Ray's saved state was older than both).
    stopped_elsewhere = {"val_f1": 0.6, "trained_to_end": False, "done": True}
    rows = [trial_row("eeee0005", {}, stopped_elsewhere, None, "val_f1")]
    tracker.finish(build_summary(config, rows), complete=True)
    client = tracker.client
    assert client.get_run(ended).data.tags["state"] == "complete"
    assert client.get_run(ended).info.status == "FINISHED"
    assert client.get_run(stopped).data.tags["state"] == "stopped-early"  # by the scheduler
    assert client.get_run(stopped).info.status == "KILLED"
    # No size was applied: no "None" params.
    assert "applied_train_batch_size" not in client.get_run(no_fit).data.params
    assert "eval_batch_size" not in client.get_run(no_fit).data.params
    # Never to run: deleted (MLflow keeps it), so the study's runs are the summary's trials.
    # Closed as interrupted, it was a phantom: hpo.report counted it, num_interrupted 1.
    assert client.get_run(cut_off).data.tags["state"] == "interrupted"
    assert client.get_run(cut_off).info.status == "KILLED"
    assert client.get_run(cut_off).info.lifecycle_stage == "deleted"
    report = build_report(client, "normal", study=config.name)
    assert report["num_interrupted"] == 0 and "bbbb0002" not in str(report)
    counts = client.get_run(tracker.parent_id).data.metrics
    assert counts["num_trials"] == counts["num_stopped_early"] == 1
    assert counts["num_interrupted"] == 0
    # A finished study resumed logs its counts again only where they changed.
    StudyTracker(config.tracking_uri, config, resume=True).finish(
        build_summary(config, rows), complete=True
    )
    assert len(client.get_metric_history(tracker.parent_id, "num_trials")) == 1


def test_a_trials_last_result_logs_only_what_its_last_epoch_did_not(tmp_path: Path) -> None:
    from hpo.tracking import StudyTracker

    config = StudyConfig(space=get_space("normal"), study_dir=tmp_path / "s")
    tracker = StudyTracker(config.tracking_uri, config)
    params = {"batch_size": 8}
    run_id = tracker.start_trial("aaaa0001", params)
    for epoch, f1 in ((1, 0.4), (2, 0.6)):
        epoch_result = {"epoch": epoch, "val_f1": f1, "train_batch_size": 8 * epoch}
        tracker.log_result("aaaa0001", params, {**epoch_result, "peak_memory_bytes": 100})
    # As `final_result` reports it: the last epoch's values again, with the test metrics and
    # the whole run's peak memory.
    last = {"epoch": 2, "val_f1": 0.6, "train_batch_size": 16, "peak_memory_bytes": 300}
    tracker.log_result("aaaa0001", params, {**last, "test_s_f1": 0.5, "done": True})
    client = tracker.client

    def history(key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]

    assert sorted(history("val_f1")) == [(1, 0.4), (2, 0.6)]
    assert sorted(history("train_batch_size")) == [(1, 8.0), (2, 16.0)]
    assert sorted(history("peak_memory_bytes")) == [(1, 100.0), (2, 100.0), (2, 300.0)]
    assert history("test_s_f1") == [(2, 0.5)]


def test_a_trial_run_again_by_resumed_drivers_logs_each_metric_once_per_step(
    tmp_path: Path,
) -> None:
    from hpo.tracking import StudyTracker

    config = StudyConfig(space=get_space("normal"), study_dir=tmp_path / "s")
    params = {"batch_size": 8}

    def epoch(number: int, f1: float) -> dict[str, object]:
        return {
            "epoch": number,
            "val_f1": f1,
            "train_batch_size": 8,
            "peak_memory_bytes": 100,
            "trained_to_end": False,
        }

    first = StudyTracker(config.tracking_uri, config)
    run_id = first.start_trial("aaaa0001", params)
    for number, f1 in ((1, 0.4), (2, 0.5)):
        first.log_result("aaaa0001", params, epoch(number, f1))
    # Ctrl-C in epoch 3; `--resume` (a new driver, a new tracker) trains the trial again from
    # its start, to other values, as MlflowTrialLogger reports it.
    second = StudyTracker(config.tracking_uri, config, resume=True)
    assert second.start_trial("aaaa0001", params) == run_id
    for number, f1 in ((1, 0.45), (2, 0.55), (3, 0.7)):
        second.log_result("aaaa0001", params, epoch(number, f1))
    last = {
        **epoch(3, 0.7),
        "peak_memory_bytes": 300,
        "test_s_f1": 0.6,
        "trained_to_end": True,
        "done": True,
    }
    second.log_result("aaaa0001", params, last)
    # SIGKILL after the trial ended, before Ray saved that: the next driver reads the trial's
    # run back and reports its last result again.
    third = StudyTracker(config.tracking_uri, config, resume=True)
    third.start_trial("aaaa0001", params)
    third.log_result("aaaa0001", params, last)

    def history(key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in first.client.get_metric_history(run_id, key))

    # The first value of each step stays, as in Optuna's intermediate values.
    assert history("val_f1") == [(1, 0.4), (2, 0.5), (3, 0.7)]
    assert history("train_batch_size") == [(1, 8.0), (2, 8.0), (3, 8.0)]
    assert history("test_s_f1") == [(3, 0.6)]
    # The last epoch's peak so far, and the whole run's beside it.
    assert history("peak_memory_bytes") == [(1, 100.0), (2, 100.0), (3, 100.0), (3, 300.0)]
