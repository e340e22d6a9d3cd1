"""`hpo.estimate.combine`: a trial's budget, the sampled trials, and the estimate's sums."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hpo.estimate import sampled_trials, slurm_mem, trial_budget_bytes
from search_spaces import get_space
from tests.hpo.estimate._estimates import (
    GIB,
    JSON_KEYS,
    make_estimate,
    make_machinery,
    make_probe,
)


def test_trial_budget_is_the_studys_default_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import trainables.batching.budget.context

    # CPU trials: the available memory over the concurrent trials, in 256 MiB steps.
    monkeypatch.setattr(
        trainables.batching.budget.context, "available_memory_bytes", lambda: 9 * GIB
    )
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


def test_combine_adds_up_its_parts_and_slows_trials_down_side_by_side() -> None:
    estimate = make_estimate(make_probe(), make_machinery(), max_concurrent=2)
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
    slower = make_estimate(make_probe(), make_machinery(slowdown=2.0), max_concurrent=2)
    assert slower.trial_seconds == pytest.approx(2 * estimate.trial_seconds)
    alone = make_estimate(make_probe(), make_machinery(slowdown=2.0), max_concurrent=1)
    assert alone.trial_seconds == pytest.approx(estimate.trial_seconds)
    assert set(estimate.to_json()) >= JSON_KEYS
    json.dumps(estimate.to_json())


def test_combine_sizes_slurm_per_node() -> None:
    cpu = make_estimate(make_probe(), make_machinery(), max_concurrent=2)
    assert cpu.slurm["nodes"] == 1 and cpu.slurm["gres"] == "gpu:0"  # CPU trials ask for no GPU
    # A CPU trial's tensors are host memory, up to its tuned maximum (50 MB + 1 MB x 1000).
    worker = 600 * 2**20 + 10 * 2**20 + 1050e6
    assert cpu.host_memory_bytes == pytest.approx(GIB + 700 * 2**20 + 2 * worker)
    gpu = make_estimate(
        make_probe(),
        make_machinery(),
        max_concurrent=8,
        gpus=8,
        gpus_per_node=4,
        gpus_per_trial=1.0,
    )
    assert (gpu.slurm["nodes"], gpu.slurm["gres"]) == (2, "gpu:4")
    # Per node: the head's driver and Ray, and 4 of the 8 workers (no tensors on the host).
    head = GIB + 700 * 2**20 + 4 * (600 * 2**20 + 10 * 2**20)
    assert gpu.host_memory_bytes == head and gpu.slurm["mem"] == slurm_mem(head)
    assert any("no GPU here" in note for note in gpu.notes)


def test_combine_says_when_not_even_one_graph_fits() -> None:
    tiny = dataclasses.replace(make_probe(), budget_bytes=40 * 10**6)
    estimate = make_estimate(tiny, make_machinery(), max_concurrent=2)
    assert estimate.max_train_batch_size == 0
    assert any("not even one graph fits" in note for note in estimate.notes)
