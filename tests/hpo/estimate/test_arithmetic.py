"""`hpo.estimate.arithmetic`: lines, batch sizes, step seconds, the makespan, SLURM values."""

from __future__ import annotations

from typing import Any

import pytest

from hpo.estimate import (
    LinearFit,
    TrialWork,
    fit_line,
    max_batch_size,
    slurm_gres,
    slurm_mem,
    slurm_time,
    steps_seconds,
    study_makespan,
)
from tests.hpo.estimate._estimates import GIB


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
