"""`hpo.estimate`: its arithmetic, its command line, and an estimate against a real study."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hpo.estimate import (
    DatasetProbe,
    LinearFit,
    Machinery,
    ModelProbe,
    StepBenchmark,
    StudyEstimate,
    TrialWork,
    combine,
    fit_line,
    format_table,
    main,
    max_batch_size,
    sampled_trials,
    slurm_gres,
    slurm_mem,
    slurm_time,
    steps_seconds,
    study_makespan,
    trial_budget_bytes,
)
from search_spaces import get_space
from trainables.cli import run_cli
from trainables.data.source import GraphSource

GIB = 1 << 30
MAX_OTHER_WORK = 0.15  # cores busy with other work, over which a timing compares nothing
JSON_KEYS = {
    "space",
    "dataset",
    "device",
    "num_train_graphs",
    "num_eval_graphs",
    "memory_per_graph_bytes",
    "fixed_memory_bytes",
    "eval_memory_per_graph_bytes",
    "train_seconds_per_graph",
    "eval_seconds_per_graph",
    "max_train_batch_size",
    "max_eval_batch_size",
    "epoch_seconds",
    "trial_seconds",
    "study_seconds",
    "num_samples",
    "gpus",
    "slurm",
}


# --- arithmetic ---------------------------------------------------------------------------------
def test_fit_line_recovers_a_line_and_never_goes_below_zero() -> None:
    assert fit_line([8, 32, 128], [116.0, 164.0, 356.0]) == LinearFit(100.0, 2.0)
    through_origin = fit_line([10, 20], [5.0, 25.0])  # a negative intercept is noise
    assert through_origin.intercept == 0.0 and through_origin.slope > 0
    flat = fit_line([8, 32, 128], [64.0, 64.0, 60.0], positive_slope=True)
    assert flat == LinearFit(0.0, 8.0)  # memory that did not grow: an upper bound, never 0
    assert fit_line([64], [1.28]) == LinearFit(0.0, 0.02)
    with pytest.raises(ValueError, match="need as many ys as xs"):
        fit_line([1, 2], [1.0])


def test_max_batch_size_fits_the_budget_and_stops_at_the_probe_set() -> None:
    memory = LinearFit(intercept=100 * 2**20, slope=2**20)
    assert max_batch_size(GIB, memory, max_graphs=10_000) == 924
    assert max_batch_size(GIB, memory, max_graphs=180) == 180
    assert max_batch_size(100 * 2**20, memory, max_graphs=10_000) == 0


def test_steps_seconds_counts_every_batch_and_the_last_partial_one() -> None:
    step = LinearFit(intercept=0.5, slope=0.01)
    assert steps_seconds(100, 40, step) == pytest.approx(2 * 0.9 + 0.7)
    assert steps_seconds(0, 40, step) == 0.0
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        steps_seconds(10, 0, step)


def test_study_makespan_runs_the_tuner_once_while_the_other_first_trials_wait() -> None:
    work = [TrialWork(1.0, 4.0)] * 4
    # Slots from 10; both first trials reach the tuner at 11, one runs it until 14, both train
    # until 18; the next two start at 18.5 (turnover), find the memo, end at 23.5.
    kwargs: dict[str, Any] = dict(slot_start_seconds=[10.0, 10.0], turnover_seconds=0.5)
    assert study_makespan(work, tuner_seconds=3.0, **kwargs) == pytest.approx(23.5)
    # Side by side (slowdown 2) work takes twice as long; the tuner runs alone at full speed.
    assert study_makespan(work, tuner_seconds=3.0, slowdown=2.0, **kwargs) == pytest.approx(
        10 + 2 + 3 + 8 + 0.5 + 2 + 8
    )
    # A fresh worker's extra work: on each slot's first trial, or on every trial.
    assert study_makespan(work, tuner_seconds=0.0, cold_seconds=1.0, **kwargs) == pytest.approx(
        10 + 6 + 0.5 + 5
    )
    fresh = study_makespan(
        work, tuner_seconds=0.0, cold_seconds=1.0, fresh_worker_per_trial=True, **kwargs
    )
    assert fresh == pytest.approx(10 + 6 + 0.5 + 6)
    # Uneven trials: a slot takes the next trial as soon as it is free.
    uneven = [TrialWork(0.0, 10.0), TrialWork(0.0, 1.0), TrialWork(0.0, 1.0)]
    assert study_makespan(uneven, slot_start_seconds=[0.0, 0.0], tuner_seconds=0.0) == 10.0
    with pytest.raises(ValueError, match="need >= 1 trial"):
        study_makespan([], slot_start_seconds=[0.0], tuner_seconds=0.0)


def test_slurm_values_round_up_in_slurms_formats() -> None:
    assert slurm_time(3000) == "01:15:00"  # x 1.5
    assert slurm_time(61, margin=1.0) == "00:02:00"
    assert slurm_time(0.5, margin=1.0) == "00:01:00"
    assert slurm_time(30 * 3600, margin=1.0) == "30:00:00"  # hours past a day stay hours
    assert slurm_mem(10 * GIB) == "12G"  # x 1.2
    assert slurm_mem(10 * GIB + 2**20, headroom=1.0) == "11G"
    assert slurm_gres(4) == "gpu:4"


def test_trial_budget_is_the_studys_default_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import trainables.batching.budget

    # CPU trials: the available memory over the concurrent trials, in 256 MiB steps.
    monkeypatch.setattr(trainables.batching.budget, "available_memory_bytes", lambda: 9 * GIB)
    assert trial_budget_bytes("cpu", num_concurrent_trials=2) == 4 * GIB + 512 * 2**20
    gpu = {"num_concurrent_trials": 4, "gpu_memory_bytes": 80 * GIB}
    assert trial_budget_bytes("cpu", gpus_per_trial=0.5, **gpu) == 40 * GIB  # half a GPU
    # Whole GPUs: each trial has its GPU to itself, whatever the concurrency.
    assert trial_budget_bytes("cuda", gpus_per_trial=1.0, **gpu) == 80 * GIB
    assert trial_budget_bytes("cpu", memory_budget=GIB, **gpu) == GIB


def test_sampled_trials_are_the_studys_searcher_draws() -> None:
    import optuna

    from hpo.searcher import OOMAwareOptunaSearch

    space = get_space("normal")
    searcher = OOMAwareOptunaSearch(
        space=space.suggest,
        metric=space.metric,
        mode=space.direction,
        sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=5),
    )
    suggested = [searcher.suggest(f"t{i}") for i in range(4)]
    drawn = [space.trial_settings(params or {}) for params in suggested]

    assert sampled_trials(space, num_samples=4, seed=3) == drawn


# --- combine ------------------------------------------------------------------------------------
def _probe(*, num_train: int = 1000, device: str = "cpu") -> DatasetProbe:
    from trainables.training.config import TrainConfig

    return DatasetProbe(
        dataset="demo",
        device=device,  # type: ignore[arg-type]
        num_threads=1,
        budget_bytes=8 * GIB,
        num_train_graphs_per_epoch=(num_train,) * 3,
        num_val_graphs=250,
        num_test_graphs=(400,),
        train_probe_graphs=num_train,
        eval_probe_graphs=650,
        model=ModelProbe(
            batch_sizes=(8, 32, 128),
            train_memory=LinearFit(50e6, 1e6),
            eval_memory=LinearFit(20e6, 2e5),
            train_step=LinearFit(0.01, 0.001),
            eval_step=LinearFit(0.005, 0.0005),
            fit_overhead_seconds=0.1,
            eval_overhead_seconds=0.05,
        ),
        tuner_seconds=2.0,
        data_seconds=0.5,
        run_setup_seconds=0.3,
        prerequisite_seconds=0.0,
        dataset_bytes=10 * 2**20,
        model_bytes=2**20,
        driver_memory_bytes=GIB,
        benchmark=StepBenchmark(TrainConfig(mode="normal"), 8, 5, "cpu"),
        probe_seconds=5.0,
    )


def _machinery(*, slowdown: float = 1.0) -> Machinery:
    return Machinery(
        ray_start_seconds=0.0,
        tracking_seconds=1.0,
        setup_seconds=0.2,
        slot_start_seconds=(8.0, 8.5),
        turnover_seconds=0.3,
        teardown_seconds=0.1,
        finish_seconds=1.5,
        cold_seconds=0.5,
        slowdown=slowdown,
        worker_memory_bytes=600 * 2**20,
        ray_memory_bytes=700 * 2**20,
        seconds=20.0,
    )


def _combine(probe: DatasetProbe, machinery: Machinery, **kwargs: Any) -> StudyEstimate:
    space = get_space("normal").with_overrides(epochs=3)
    trials = sampled_trials(space, num_samples=kwargs.pop("num_samples", 6), seed=0)
    return combine(probe, machinery, space=space, trials=trials, **kwargs)


def test_combine_adds_up_its_parts_and_slows_trials_down_side_by_side() -> None:
    estimate = _combine(_probe(), _machinery(), max_concurrent=2)
    parts = estimate.parts
    driver = ("ray_start", "tracking", "data", "prerequisites", "setup")
    after = ("trials", "teardown", "finish")
    assert estimate.study_seconds == pytest.approx(sum(parts[k] for k in driver + after))
    # 6 trials on 2 slots: 3 waves after the start-up, and the tuner once.
    assert parts["trials"] > 8.5 + 3 * estimate.trial_seconds
    assert (estimate.max_train_batch_size, estimate.max_eval_batch_size) == (1000, 650)
    assert estimate.epoch_seconds == pytest.approx(
        1000 * estimate.train_seconds_per_graph + 250 * estimate.eval_seconds_per_graph + 0.05
    )
    slower = _combine(_probe(), _machinery(slowdown=2.0), max_concurrent=2)
    assert slower.trial_seconds == pytest.approx(2 * estimate.trial_seconds)
    alone = _combine(_probe(), _machinery(slowdown=2.0), max_concurrent=1)
    assert alone.trial_seconds == pytest.approx(estimate.trial_seconds)
    assert set(estimate.to_json()) >= JSON_KEYS
    json.dumps(estimate.to_json())


def test_combine_sizes_slurm_per_node() -> None:
    cpu = _combine(_probe(), _machinery(), max_concurrent=2)
    assert cpu.slurm["nodes"] == 1 and cpu.slurm["gres"] == "gpu:0"  # CPU trials ask for no GPU
    # A CPU trial's tensors are host memory, up to its tuned maximum (50 MB + 1 MB x 1000).
    worker = 600 * 2**20 + 10 * 2**20 + 1050e6
    assert cpu.host_memory_bytes == pytest.approx(GIB + 700 * 2**20 + 2 * worker)
    gpu = _combine(
        _probe(), _machinery(), max_concurrent=8, gpus=8, gpus_per_node=4, gpus_per_trial=1.0
    )
    assert (gpu.slurm["nodes"], gpu.slurm["gres"]) == (2, "gpu:4")
    # Per node: the head's driver and Ray, and 4 of the 8 workers (no tensors on the host).
    head = GIB + 700 * 2**20 + 4 * (600 * 2**20 + 10 * 2**20)
    assert gpu.host_memory_bytes == head and gpu.slurm["mem"] == slurm_mem(head)
    assert any("no GPU here" in note for note in gpu.notes)


def test_combine_says_when_not_even_one_graph_fits() -> None:
    tiny = dataclasses.replace(_probe(), budget_bytes=40 * 10**6)
    estimate = _combine(tiny, _machinery(), max_concurrent=2)
    assert estimate.max_train_batch_size == 0
    assert any("not even one graph fits" in note for note in estimate.notes)


def test_format_table_puts_datasets_side_by_side() -> None:
    first = _combine(_probe(), _machinery(), max_concurrent=2)
    second = _combine(_probe(num_train=5000), _machinery(), max_concurrent=2)
    table = format_table([first, second])
    assert table.splitlines()[1].split() == ["demo", "demo"]
    assert "sbatch --time" in table and first.slurm["time"] in table


# --- the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus", "0"], "--gpus must be an integer >= 1, got 0"),
        (["--gpus-per-node", "0"], "--gpus-per-node must be an integer >= 1, got 0"),
        (["--gpu-memory", "4XB"], "--gpu-memory"),
        (["--gpu-memory", "0"], "--gpu-memory must be > 0"),
        (["--memory-budget=0"], "--memory-budget must be > 0"),
        (["--num-samples", "0"], "--num-samples must be an integer >= 1"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
        (["--gpus-per-trial", "-1"], "--gpus-per-trial must be >= 0"),
        (["--margin", "0.5"], "--margin must be >= 1"),
        (["--compare", "a", "b"], "--compare names datasets under --data-dir"),
        (["--data-dir", "/nonexistent/captures", "--dataset", "x"], "/nonexistent/captures"),
        (["--space", "nope"], "unknown search space 'nope'"),
    ],
)
def test_estimate_cli_says_what_is_wrong_and_exits_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(main, ["--space", "normal", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_estimate_cli_fails_fast_without_a_traceback() -> None:
    # A bad number is found before torch (or Ray) is imported: no measuring, no waiting.
    code = (
        "import sys; from hpo.estimate.cli import main; from trainables.cli import run_cli;"
        " rc = run_cli(main, ['--space', 'normal', '--gpus', '0']);"
        " print(rc, 'torch' in sys.modules, 'ray' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    assert "--gpus must be an integer >= 1, got 0" in result.stderr
    module = subprocess.run(
        [sys.executable, "-m", "hpo.estimate", "--space", "normal", "--margin", "0"],
        capture_output=True,
        text=True,
    )
    assert module.returncode == 2 and "Traceback" not in module.stderr
    assert "--margin must be >= 1" in module.stderr and module.stdout == ""


def test_estimate_cli_json_is_one_object_per_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hpo.estimate.study

    for name in ("a", "b"):
        split = tmp_path / name / "train_01_attack_free"
        split.mkdir(parents=True)
        (split / "capture.csv").write_text("timestamp,arbitration_id,data_field,attack\n")
    seen: dict[str, Any] = {}

    def estimate_study(config: Any, *, sources: list[GraphSource], **kwargs: Any) -> list:
        seen.update(kwargs, config=config, datasets=[s.dataset_name for s in sources])
        return [
            dataclasses.replace(_combine(_probe(), _machinery(), max_concurrent=2), dataset=name)
            for name in seen["datasets"]
        ]

    monkeypatch.setattr(hpo.estimate.study, "estimate_study", estimate_study)
    monkeypatch.setattr(hpo.estimate.study, "warm_up_driver", lambda space: 0.0)
    args = ["--space", "kd", "--data-dir", str(tmp_path), "--compare", "a", "b", "--epochs", "3"]
    args += ["--gpus", "8", "--gpus-per-node", "4", "--gpus-per-trial", "0.5", "--cluster"]

    assert main([*args, "--json"]) == 0

    lines = capsys.readouterr().out.splitlines()
    estimates = [json.loads(line) for line in lines]
    assert [e["dataset"] for e in estimates] == ["a", "b"]
    for estimate in estimates:
        assert set(estimate) >= JSON_KEYS
        slurm = estimate["slurm"]  # in the formats scripts/slurm/submit.sh reads
        assert re.fullmatch(r"\d{2,}:\d{2}:00", slurm["time"])
        assert re.fullmatch(r"\d+G", slurm["mem"]) and re.fullmatch(r"gpu:\d+", slurm["gres"])
        assert isinstance(slurm["nodes"], int) and slurm["nodes"] >= 1
    config = seen["config"]
    assert (config.space.name, config.space.epochs, config.num_samples) == ("kd", 3, 6)
    assert (config.gpus_per_trial, config.address) == (0.5, "auto")  # --cluster: joins one
    assert (seen["gpus"], seen["gpus_per_node"]) == (8, 4)


# --- against a real study ---------------------------------------------------------------------
class _OtherWork:
    """CPU time this machine spends outside this process and its descendants (other users'
    work, a VM's stolen time) while inside the context, per second of wall time: `share`.

    Descendants are sampled every 0.2 s and kept after they exit: Ray reaps its workers without
    adding their CPU time to its own.
    """

    def __enter__(self) -> _OtherWork:
        import threading

        self.share = 0.0
        self._ours: dict[tuple[int, float], float] = {}
        self._start = (time.perf_counter(), self._busy(), self._sample())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        ours = sum(self._sample().values()) - sum(self._start[2].values())
        wall, busy = time.perf_counter() - self._start[0], self._busy() - self._start[1]
        self.share = (busy - ours) / max(wall, 1e-9)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def _sample(self) -> dict[tuple[int, float], float]:
        import psutil

        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                self._ours[process.pid, process.create_time()] = times.user + times.system
        return dict(self._ours)

    @staticmethod
    def _busy() -> float:
        import psutil

        t = psutil.cpu_times()
        return t.user + t.nice + t.system + t.irq + t.softirq + t.steal  # type: ignore[attr-defined]


def test_estimate_is_within_30_percent_of_a_real_studys_wall_time(
    ray_local: None, smoke_source: GraphSource, tmp_path: Path
) -> None:
    """The estimate, then the study it estimates, on this module's Ray (both join it, as
    `run_study` does): 4 trials of the teacher GAT for 2 epochs, 2 at a time, on smoke data, so
    that the trials (tuner, epochs, tests) are most of the study and Ray's worker start-up most
    of the rest. The study's wall time is `run_study`'s, from call to return.

    Neither holds when other work shares the machine's cores meanwhile (the estimate measures
    an idle machine; the study is slowed). Such a round is measured again, once; when that one
    is disturbed too, the test is skipped, with both rounds' figures.
    """
    from hpo.estimate import estimate_study
    from hpo.study import StudyConfig, run_study

    space = get_space("normal").with_overrides(epochs=2, dataset=smoke_source.dataset_name)
    reports = []
    for index in range(2):
        config = StudyConfig(
            space=space,
            study_dir=tmp_path / f"round-{index}" / "measured",
            source=smoke_source,
            num_samples=4,
            max_concurrent=2,
            factor_store_path=tmp_path / f"round-{index}" / "safety_factors.json",
        )
        with _OtherWork() as estimating:
            [estimate] = estimate_study(config)
        assert not config.study_dir.exists()
        assert estimate.parts["ray_start"] == 0.0  # joined, as the study joins it
        with _OtherWork() as studying:
            start = time.perf_counter()
            summary = run_study(config)
            measured = time.perf_counter() - start
        assert summary["num_complete"] == 4
        ratio = estimate.study_seconds / measured
        reports.append(
            f"estimate {estimate.study_seconds:.1f} s, measured {measured:.1f} s: x{ratio:.2f}"
            f" (other work: {estimating.share:.2f} and {studying.share:.2f} cores; slowdown"
            f" {estimate.slowdown:.2f}; "
            + ", ".join(f"{k} {v:.1f}" for k, v in estimate.parts.items())
            + ")"
        )
        print(reports[-1])
        if max(estimating.share, studying.share) <= MAX_OTHER_WORK:
            assert 0.7 <= ratio <= 1.3, reports[-1]
            return
    pytest.skip("other work on this machine disturbed both rounds: " + "; ".join(reports))
