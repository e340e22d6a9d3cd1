"""`trainables.batching.schedules.kinds`: the batch size every kind of schedule gives."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from trainables.batching.schedules import (
    BatchSizeSchedule,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    PiecewiseSchedule,
    StepSchedule,
    check_milestones_reached,
    kinds,
)
from trainables.errors import UserError


def test_step_schedule_multiplies_every_step_size_epochs() -> None:
    schedule = StepSchedule(step_size=20, gamma=2)
    assert schedule.batch_size_at(0, 256, 4096) == 256
    assert schedule.batch_size_at(19, 256, 4096) == 256
    assert schedule.batch_size_at(20, 256, 4096) == 512
    assert schedule.batch_size_at(45, 256, 4096) == 1024


def test_step_schedule_stops_at_its_max_batch_size() -> None:
    schedule = StepSchedule(step_size=1, gamma=3, max_batch_size=100)
    assert schedule.sizes_for_epochs(10, 5, tuned_max=10_000) == [10, 30, 90, 100, 100]


def test_step_schedule_stays_fast_for_many_epochs() -> None:
    schedule = StepSchedule(step_size=1, gamma=2)
    assert schedule.batch_size_at(10**7, 64, 1024) == 1024


def test_schedules_stop_at_the_tuned_maximum_unless_told_not_to() -> None:
    capped = StepSchedule(step_size=1, gamma=2)
    uncapped = StepSchedule(step_size=1, gamma=2, cap_at_tuned_max=False)
    assert capped.sizes_for_epochs(64, 4, tuned_max=200) == [64, 128, 200, 200]
    assert uncapped.sizes_for_epochs(64, 4, tuned_max=200) == [64, 128, 256, 512]


def test_constant_schedule_keeps_the_initial_size() -> None:
    assert ConstantSchedule().sizes_for_epochs(48, 3, tuned_max=64) == [48, 48, 48]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (LinearSchedule(final_batch_size=128, num_epochs=4), [64, 80, 96, 112, 128, 128]),
        (ExponentialSchedule(final_batch_size=512, num_epochs=3), [64, 128, 256, 512, 512, 512]),
        (CosineSchedule(final_batch_size=256, num_epochs=4), [64, 92, 160, 228, 256, 256]),
        (LinearSchedule(final_batch_size=32, num_epochs=2), [64, 48, 32, 32, 32, 32]),
    ],
)
def test_ramp_schedules_reach_the_final_size_then_hold_it(
    schedule: BatchSizeSchedule, expected: list[int]
) -> None:
    assert schedule.sizes_for_epochs(64, 6, tuned_max=1024) == expected


def test_piecewise_schedule_uses_the_initial_size_before_the_first_milestone() -> None:
    schedule = PiecewiseSchedule(milestones=((3, 128), (5, 32)))
    assert schedule.sizes_for_epochs(64, 7, tuned_max=100) == [64, 64, 64, 100, 100, 32, 32]


def test_schedule_learning_rate_follows_its_lr_scaling() -> None:
    schedule = StepSchedule(step_size=1, gamma=2, lr_scaling="linear")
    assert schedule.learning_rate_for(256, base_lr=0.01, base_batch_size=128) == 0.02
    assert ConstantSchedule().learning_rate_for(256, base_lr=0.01, base_batch_size=128) == 0.01


def test_schedules_are_frozen() -> None:
    schedule = StepSchedule(step_size=1, gamma=2)
    with pytest.raises(ValidationError, match="frozen"):
        schedule.gamma = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("epoch", "initial", "tuned_max", "match"),
    [
        (-1, 64, 128, "epoch must be >= 0"),
        (0, 0, 128, "batch sizes must be >= 1"),
        (0, 64, 0, "batch sizes must be >= 1"),
    ],
)
def test_batch_size_at_rejects_bad_arguments(
    epoch: int, initial: int, tuned_max: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        ConstantSchedule().batch_size_at(epoch, initial, tuned_max)


_initial = st.integers(min_value=1, max_value=4096)
_growing_schedules = st.one_of(
    st.builds(
        StepSchedule,
        step_size=st.integers(min_value=1, max_value=10),
        gamma=st.integers(min_value=2, max_value=4),
        max_batch_size=st.none() | st.integers(min_value=1, max_value=10**5),
    ),
    *(
        st.builds(
            kind,
            final_batch_size=st.integers(min_value=4096, max_value=10**5),
            num_epochs=st.integers(min_value=1, max_value=50),
        )
        for kind in (LinearSchedule, ExponentialSchedule, CosineSchedule)
    ),
)


@given(schedule=_growing_schedules, initial=_initial, tuned_max=st.integers(1, 10**5))
def test_growing_schedules_never_shrink_and_never_pass_the_tuned_maximum(
    schedule: BatchSizeSchedule, initial: int, tuned_max: int
) -> None:
    sizes = schedule.sizes_for_epochs(initial, 60, tuned_max)
    assert all(1 <= size <= tuned_max for size in sizes)
    if not isinstance(schedule, StepSchedule) or schedule.max_batch_size is None:
        assert sizes == sorted(sizes)
    else:  # a max_batch_size below the initial size lowers it from epoch 0 on, then holds
        assert sizes[1:] == sorted(sizes[1:])


@given(
    milestones=st.lists(
        st.tuples(st.integers(0, 100), st.integers(1, 10**5)),
        min_size=1,
        max_size=8,
        unique_by=lambda milestone: milestone[0],
    ).map(sorted),
    initial=_initial,
    tuned_max=st.integers(1, 10**5),
)
def test_piecewise_schedule_never_passes_the_tuned_maximum(
    milestones: list[tuple[int, int]], initial: int, tuned_max: int
) -> None:
    schedule = PiecewiseSchedule(milestones=tuple(milestones))
    assert all(
        1 <= size <= tuned_max for size in schedule.sizes_for_epochs(initial, 110, tuned_max)
    )


def test_a_piecewise_milestone_past_the_last_epoch_is_never_reached() -> None:
    schedule = PiecewiseSchedule(milestones=((2, 128), (5, 256)))
    check_milestones_reached(schedule, 6)  # epochs 0 to 5: the last one is reached
    check_milestones_reached(StepSchedule(step_size=9, gamma=2), 5)  # only milestones count
    with pytest.raises(
        UserError, match=r"^--schedule: milestone 1 \[5, 256\] is never reached: --epochs 5"
    ):
        check_milestones_reached(schedule, 5)


def test_schedules_docstring_examples_run() -> None:
    assert doctest.testmod(kinds).failed == 0
