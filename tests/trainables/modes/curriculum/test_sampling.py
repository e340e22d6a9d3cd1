from __future__ import annotations

import numpy as np
import pytest

from trainables.errors import UserError
from trainables.modes.curriculum import (
    curriculum_ratio,
    curriculum_sample,
    max_epoch_size,
)

LABELS = np.array([0] * 200 + [1] * 10)


# --- curriculum_ratio -------------------------------------------------------------------


def test_curriculum_ratio_grows_linearly_from_start_to_end() -> None:
    ratios = [curriculum_ratio(e, 10) for e in range(10)]
    assert ratios[0] == 1.0 and ratios[-1] == 10.0
    assert np.allclose(np.diff(ratios), 1.0)
    assert curriculum_ratio(2, 5, start=2.0, end=4.0) == 3.0


def test_curriculum_ratio_one_epoch_and_later_epochs_use_end() -> None:
    assert curriculum_ratio(0, 1, start=1.0, end=6.0) == 6.0
    assert curriculum_ratio(12, 10, start=1.0, end=6.0) == 6.0


@pytest.mark.parametrize(
    ("epoch", "num_epochs", "start", "end", "message"),
    [
        (0, 0, 1.0, 10.0, r"num_epochs must be >= 1, got num_epochs=0"),
        (-1, 5, 1.0, 10.0, r"epoch must be >= 0, got epoch=-1"),
        (0, 5, 0.0, 10.0, r"0 < start <= end, got start=0.0 and end=10.0"),
        (0, 5, 3.0, 2.0, r"0 < start <= end, got start=3.0 and end=2.0"),
    ],
)
def test_curriculum_ratio_validates(
    epoch: int, num_epochs: int, start: float, end: float, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        curriculum_ratio(epoch, num_epochs, start=start, end=end)


# --- curriculum_sample ------------------------------------------------------------------


@pytest.mark.parametrize(("ratio", "num_normal"), [(1.0, 10), (2.54, 25), (7.0, 70), (50.0, 200)])
def test_curriculum_sample_has_every_attack_and_ratio_normals(
    ratio: float, num_normal: int
) -> None:
    difficulty = np.random.default_rng(1).random(len(LABELS))
    sample = curriculum_sample(LABELS, difficulty, ratio=ratio, rng=np.random.default_rng(2))
    assert sample.dtype == np.int64
    assert np.array_equal(sample, np.unique(sample))  # sorted, no duplicates
    assert set(np.flatnonzero(LABELS == 1)) <= set(sample.tolist())
    assert np.count_nonzero(LABELS[sample] == 0) == num_normal


def test_curriculum_sample_draws_harder_graphs_more_often() -> None:
    difficulty = np.random.default_rng(0).exponential(size=len(LABELS))
    counts = np.zeros(len(LABELS))
    for draw in range(400):
        rng = np.random.default_rng((7, draw))
        counts[curriculum_sample(LABELS, difficulty, ratio=5.0, rng=rng)] += 1
    normal = np.flatnonzero(LABELS == 0)
    by_difficulty = normal[np.argsort(difficulty[normal])]
    quartiles = [counts[q].mean() for q in np.split(by_difficulty, 4)]
    assert quartiles == sorted(quartiles) and quartiles[3] > 10 * quartiles[0]
    # A draw, not a top-k: even the easiest quarter is seen now and then.
    assert counts[np.split(by_difficulty, 4)[0]].sum() > 0


def test_curriculum_sample_depends_only_on_difficulty_ranks() -> None:
    difficulty = np.random.default_rng(3).random(len(LABELS))
    first = curriculum_sample(LABELS, difficulty, ratio=3.0, rng=np.random.default_rng(4))
    rescaled = curriculum_sample(
        LABELS, np.exp(difficulty) * 50 + 7, ratio=3.0, rng=np.random.default_rng(4)
    )
    assert np.array_equal(first, rescaled)


def test_curriculum_sample_hardness_zero_ignores_difficulty() -> None:
    easy_first = np.arange(len(LABELS), dtype=np.float64)
    hard_first = easy_first[::-1].copy()
    samples = [
        curriculum_sample(LABELS, d, ratio=3.0, rng=np.random.default_rng(5), hardness=0.0)
        for d in (easy_first, hard_first)
    ]
    assert np.array_equal(samples[0], samples[1])


@pytest.mark.parametrize(
    ("labels", "difficulty", "kwargs", "error", "message"),
    [
        (LABELS, np.zeros(3), {}, ValueError, r"same length, got shapes \(210,\) and \(3,\)"),
        (LABELS.reshape(2, -1), np.zeros((2, 105)), {}, ValueError, "must be 1-D arrays"),
        (np.zeros(5), np.zeros(5), {}, UserError, "curriculum needs attack graphs in the train"),
        (LABELS, np.zeros(210), {"ratio": 0.0}, UserError, r"ratio must be > 0, got ratio=0.0"),
        (LABELS, np.zeros(210), {"hardness": -1.0}, UserError, r"hardness must be >= 0"),
        (LABELS, np.full(210, np.nan), {}, ValueError, "difficulty of normal graphs must be"),
    ],
)
def test_curriculum_sample_validates(
    labels: np.ndarray,
    difficulty: np.ndarray,
    kwargs: dict[str, float],
    error: type[Exception],
    message: str,
) -> None:
    options: dict[str, float] = {"ratio": 1.0, **kwargs}
    with pytest.raises(error, match=message):
        curriculum_sample(labels, difficulty, rng=np.random.default_rng(0), **options)


# --- max_epoch_size ---------------------------------------------------------------------


@pytest.mark.parametrize(("end_ratio", "expected"), [(10.0, 110), (30.0, 210), (2.55, 36)])
def test_max_epoch_size_is_the_largest_sample_of_any_epoch(
    end_ratio: float, expected: int
) -> None:
    difficulty = np.random.default_rng(0).random(len(LABELS))
    sizes = [
        len(
            curriculum_sample(
                LABELS,
                difficulty,
                ratio=curriculum_ratio(epoch, 8, end=end_ratio),
                rng=np.random.default_rng(epoch),
            )
        )
        for epoch in range(8)
    ]
    assert max(sizes) == max_epoch_size(LABELS, end_ratio=end_ratio) == expected == sizes[-1]


def test_max_epoch_size_validates() -> None:
    with pytest.raises(UserError, match=r"end ratio must be > 0, got end_ratio=-1.0"):
        max_epoch_size(LABELS, end_ratio=-1.0)
    with pytest.raises(UserError, match="curriculum needs attack graphs in the training split"):
        max_epoch_size(np.zeros(4, np.int64))


# --- score_graphs -----------------------------------------------------------------------
