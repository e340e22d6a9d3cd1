"""The curriculum's draw, as plain functions: the ratio of normal to attack graphs at an epoch,
and the epoch's sample of every attack graph plus the hardest-weighted normal graphs."""

from __future__ import annotations

import numpy as np

from trainables.errors import UserError

__all__ = [
    "check_ratio_range",
    "curriculum_ratio",
    "curriculum_sample",
    "max_epoch_size",
    "num_attack_graphs",
]


def check_ratio_range(start: float, end: float) -> None:
    """Raise `UserError` unless 0 < `start` <= `end` (normal graphs per attack graph)."""
    if not 0.0 < start <= end:
        raise UserError(
            f"curriculum ratios must satisfy 0 < start <= end, got {start=} and {end=}"
        )


def num_attack_graphs(labels: np.ndarray) -> int:
    """The number of attack graphs (label 1); `UserError` when there are none."""
    num_attack = int(np.count_nonzero(labels == 1))
    if num_attack == 0:
        raise UserError(
            "curriculum needs attack graphs in the training split, found none among "
            f"{len(labels)} graphs; use a dataset with attacks in its training captures"
        )
    return num_attack


def curriculum_ratio(
    epoch: int, num_epochs: int, *, start: float = 1.0, end: float = 10.0
) -> float:
    """Normal graphs per attack graph in an epoch, linear from `start` at epoch 0 to `end` at the
    last.

    A one-epoch run uses `end`: the last epoch always sees the full curriculum, so the largest
    sample (`max_epoch_size`) is the one a short smoke run exercises. Epochs past the last
    (a Trainer running longer than `num_epochs`) keep `end`.

    Args:
        epoch: Zero-based epoch index, >= 0.
        num_epochs: Epochs of the curriculum, >= 1.
        start: Ratio at epoch 0 (default 1.0, attack:normal 1:1), > 0.
        end: Ratio at the last epoch (default 10.0, attack:normal 1:10), >= `start`.

    Returns:
        Normal graphs per attack graph.

    Raises:
        UserError: An argument is out of range.

    Example:
        >>> [curriculum_ratio(e, 4, start=1.0, end=10.0) for e in range(4)]
        [1.0, 4.0, 7.0, 10.0]
    """
    if num_epochs < 1:
        raise UserError(f"curriculum num_epochs must be >= 1, got {num_epochs=}")
    if epoch < 0:
        raise UserError(f"curriculum epoch must be >= 0, got {epoch=}")
    check_ratio_range(start, end)
    if num_epochs == 1 or epoch >= num_epochs - 1:
        return float(end)
    return start + (end - start) * epoch / (num_epochs - 1)


def curriculum_sample(
    labels: np.ndarray,
    difficulty: np.ndarray,
    *,
    ratio: float,
    rng: np.random.Generator,
    hardness: float = 2.0,
) -> np.ndarray:
    """One epoch's sample: every attack graph and `ratio` times as many normal graphs, hard first.

    `min(round(ratio * num_attack), num_normal)` normal graphs are drawn without replacement,
    each with probability proportional to `(rank + 1) ** hardness`, rank 0 being the easiest
    (lowest difficulty) normal graph. Ranks make the draw independent of the scores' scale;
    sampling (rather than taking the top-k) keeps every epoch's sample different while still
    favouring the hardest graphs.

    Args:
        labels: Graph labels (0 normal, 1 attack), `[num_graphs]`.
        difficulty: Difficulty of each graph (e.g. VGAE anomaly score), aligned with `labels`;
            values of attack graphs are ignored.
        ratio: Normal graphs per attack graph, > 0.
        rng: Source of randomness; seed it per epoch for reproducible runs.
        hardness: Exponent of the rank weights (default 2.0); 0 samples normal graphs
            uniformly, larger values concentrate on the hardest.

    Returns:
        Sorted int64 indices into `labels`, without duplicates.

    Raises:
        ValueError: `labels` and `difficulty` are not 1-D arrays of the same length, or a
            normal graph's difficulty is not finite.
        UserError: `ratio` or `hardness` is out of range, or there is no attack graph.

    Example:
        >>> labels = np.array([0, 0, 0, 0, 1, 1])
        >>> difficulty = np.array([0.1, 0.9, 0.5, 0.3, 0.0, 0.0])
        >>> curriculum_sample(labels, difficulty, ratio=1.0, rng=np.random.default_rng(0),
        ...                   hardness=50.0).tolist()
        [1, 2, 4, 5]
    """
    labels = np.asarray(labels)
    difficulty = np.asarray(difficulty, dtype=np.float64)
    if labels.ndim != 1 or difficulty.shape != labels.shape:
        raise ValueError(
            "labels and difficulty must be 1-D arrays of the same length, got shapes "
            f"{labels.shape} and {difficulty.shape}"
        )
    if not ratio > 0:
        raise UserError(f"curriculum ratio must be > 0, got {ratio=}")
    if not hardness >= 0:
        raise UserError(f"curriculum hardness must be >= 0, got {hardness=}")
    num_attack = num_attack_graphs(labels)
    attack = np.flatnonzero(labels == 1)
    normal = np.flatnonzero(labels != 1)
    normal_difficulty = difficulty[normal]
    if not np.all(np.isfinite(normal_difficulty)):
        raise ValueError("difficulty of normal graphs must be finite (got NaN or inf)")
    num_normal = min(round(ratio * num_attack), len(normal))
    order = np.argsort(normal_difficulty, kind="stable")
    ranks = np.empty(len(normal), dtype=np.float64)
    ranks[order] = np.arange(len(normal))
    weights = (ranks + 1.0) ** hardness
    chosen = rng.choice(normal, size=num_normal, replace=False, p=weights / weights.sum())
    return np.sort(np.concatenate([attack, chosen]).astype(np.int64))


def max_epoch_size(labels: np.ndarray, *, end_ratio: float = 10.0) -> int:
    """The most graphs any epoch of the curriculum uses: those of its last epoch.

    Args:
        labels: Graph labels of the training set (0 normal, 1 attack).
        end_ratio: Normal graphs per attack graph in the last epoch (default 10.0), > 0.

    Returns:
        `num_attack + min(round(end_ratio * num_attack), num_normal)`.

    Raises:
        UserError: `end_ratio` is out of range, or there is no attack graph.

    Example:
        >>> max_epoch_size(np.array([0] * 30 + [1] * 2), end_ratio=10.0)
        22
    """
    labels = np.asarray(labels)
    if not end_ratio > 0:
        raise UserError(f"curriculum end ratio must be > 0, got {end_ratio=}")
    num_attack = num_attack_graphs(labels)
    return num_attack + min(round(end_ratio * num_attack), len(labels) - num_attack)
