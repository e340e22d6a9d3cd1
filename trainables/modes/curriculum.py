"""`curriculum` mode data: every attack graph plus a growing share of hard normal graphs per epoch.

A normal graph is hard when a VGAE trained on normal traffic reconstructs it badly (a high
`graph_anomaly_scores`). Each epoch draws a fresh sample: all attack graphs plus
`ratio * num_attack` normal graphs, the ratio (normal graphs per attack graph) growing linearly
from 1.0 (attack:normal 1:1) to 10.0 (1:10), the normal graphs drawn without replacement with
weights growing with their difficulty rank. The algorithm is plain functions;
`CurriculumDataModule` only picks the epoch and calls them.
"""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl
import torch

from trainables.data.datamodule import CANGraphDataModule, EpochOrder
from trainables.data.dataset import CANGraphDataset, GraphLoader
from trainables.data.source import GraphSource
from trainables.errors import UserError
from trainables.models.vgae import VGAE, graph_anomaly_scores

__all__ = [
    "SCORING_BATCH_SIZE",
    "CurriculumDataModule",
    "curriculum_ratio",
    "curriculum_sample",
    "max_epoch_size",
    "score_graphs",
]

logger = logging.getLogger(__name__)


def _check_ratio_range(start: float, end: float) -> None:
    if not 0.0 < start <= end:
        raise UserError(
            f"curriculum ratios must satisfy 0 < start <= end, got {start=} and {end=}"
        )


def _num_attack(labels: np.ndarray) -> int:
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
    _check_ratio_range(start, end)
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
    num_attack = _num_attack(labels)
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
    num_attack = _num_attack(labels)
    return num_attack + min(round(end_ratio * num_attack), len(labels) - num_attack)


SCORING_BATCH_SIZE = 64
"""Graphs `score_graphs` runs at once by default. A graph's score does not depend on how graphs are
batched, and the VGAE's dense neighbour logits grow with nodes x vocabulary: scoring runs before a
trial's memory budget starts, so its batch is kept small. hcrl_sa's 7,493 training graphs on CPU
(`benchmarks/bench_scoring.py`): 8192 a batch took 9.1 GiB and 18 s; 64, 0.8 GiB and 5 s."""


def score_graphs(
    vgae: VGAE, dataset: CANGraphDataset, *, batch_size: int = SCORING_BATCH_SIZE
) -> np.ndarray:
    """VGAE anomaly score of every graph of `dataset`, in order, on the model's device.

    Runs in eval mode without gradients (`graph_anomaly_scores`) and leaves the model's mode
    as it was.

    Args:
        vgae: A VGAE trained on normal graphs.
        dataset: The graphs to score, e.g. a datamodule's `train_set`.
        batch_size: Graphs per forward pass, >= 1 (default `SCORING_BATCH_SIZE`; not a trial's
            batch size, which may be thousands).

    Returns:
        float64 `[len(dataset)]`; higher means harder (less like normal traffic).

    Raises:
        UserError: `batch_size` is below 1.
    """
    if batch_size < 1:
        raise UserError(f"scoring batch size must be >= 1, got {batch_size=}")
    device = next(vgae.parameters()).device
    scores = [
        graph_anomaly_scores(vgae, batch.to(device)).cpu().double()
        for batch in GraphLoader(dataset, batch_size=batch_size, shuffle=False)
    ]
    if not scores:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(scores).numpy()


class CurriculumDataModule(CANGraphDataModule):
    """`CANGraphDataModule` whose training set is redrawn every epoch by `curriculum_sample`.

    **The Trainer must be built with `reload_dataloaders_every_n_epochs=1`**; otherwise Lightning
    keeps epoch 0's dataloader and the curriculum never advances (a sample drawn once is the
    known bug this class exists to fix). `train_dataloader()` raises a RuntimeError when the
    attached Trainer has any other value.

    Wiring: call `setup()`, score the training set with a VGAE trained on normal graphs
    (`dm.set_difficulty(score_graphs(vgae, dm.train_set))`), then `fit`.
    `train_dataloader()` reads the epoch from the attached trainer (0 without one), draws
    that epoch's sample with a generator seeded from `(seed, epoch)` (reproducible runs,
    different epochs) and logs `curriculum epoch 3/10: 120 attack + 480 normal graphs
    (ratio 1:4.0)`. Validation and test sets are the parent's, untouched.

    Batch-size tuning: epochs grow, so tune on every epoch, not on `train_dataloader()`, which
    serves epoch 0: `train_orders(num_epochs)` gives each epoch's shuffled sample before training
    (what `HeaviestWindows` probes); `worst_case_dataset()` bounds any epoch (the
    `max_epoch_size` largest graphs).

    Args:
        source: Where graphs come from (default: the embedded synthetic traffic).
        num_epochs: Epochs of the curriculum (the Trainer's `max_epochs`), >= 1.
        start_ratio: Normal graphs per attack graph in the first epoch (default 1.0), > 0.
        end_ratio: Normal graphs per attack graph in the last epoch (default 10.0),
            >= `start_ratio`.
        hardness: Rank-weight exponent of `curriculum_sample` (default 2.0); 0 is uniform.
        batch_size: Training batch size (default 64).
        eval_batch_size: Validation/test batch size (default: `batch_size`).
        val_fraction: Share of training graphs held out for validation (default 0.2).
        seed: Seed of the split, of every epoch's sample and of its shuffle (default 0).
        num_workers: DataLoader worker processes (default 0: graphs are in memory).

    Example:
        >>> dm = CurriculumDataModule(num_epochs=10, batch_size=32)
        >>> dm.num_epochs, dm.start_ratio, dm.end_ratio, dm.batch_size
        (10, 1.0, 10.0, 32)
    """

    def __init__(
        self,
        source: GraphSource | None = None,
        *,
        num_epochs: int,
        start_ratio: float = 1.0,
        end_ratio: float = 10.0,
        hardness: float = 2.0,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.2,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            source,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            val_fraction=val_fraction,
            seed=seed,
            num_workers=num_workers,
        )
        if num_epochs < 1:
            raise UserError(f"curriculum num_epochs must be >= 1, got {num_epochs=}")
        _check_ratio_range(start_ratio, end_ratio)
        if not hardness >= 0:
            raise UserError(f"curriculum hardness must be >= 0, got {hardness=}")
        self.num_epochs = num_epochs
        self.start_ratio = float(start_ratio)
        self.end_ratio = float(end_ratio)
        self.hardness = float(hardness)
        self.difficulty: np.ndarray | None = None

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        # Fail before a VGAE is trained to score a training set the curriculum cannot use.
        _num_attack(self._require(self.train_set).labels)

    def set_difficulty(self, scores: np.ndarray) -> None:
        """Store the difficulty of each graph of `train_set` (e.g. from `score_graphs`).

        Raises:
            RuntimeError: `setup()` has not run.
            ValueError: `scores` is not one value per training graph, or a normal graph's
                score is not finite (attack graphs' scores are never used).
        """
        train_set = self._require(self.train_set)
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (len(train_set),):
            raise ValueError(
                f"difficulty needs one score per training graph ({len(train_set)}), "
                f"got shape {scores.shape}"
            )
        if not np.all(np.isfinite(scores[train_set.labels != 1])):
            raise ValueError("difficulty scores of normal graphs must be finite (got NaN or inf)")
        self.difficulty = scores

    @property
    def max_epoch_size(self) -> int:
        """Graphs in the largest epoch (the last); needs `setup()`."""
        return max_epoch_size(self._require(self.train_set).labels, end_ratio=self.end_ratio)

    def epoch_sample(self, epoch: int) -> np.ndarray:
        """Sorted indices into `train_set` of the graphs epoch `epoch` trains on."""
        labels = self._require(self.train_set).labels
        if self.difficulty is None:
            raise RuntimeError(
                "call set_difficulty(scores) after setup() and before training, e.g. "
                "dm.set_difficulty(score_graphs(vgae, dm.train_set))"
            )
        ratio = self._ratio(epoch)
        rng = np.random.default_rng(self._seed_sequence(epoch).spawn(1)[0])
        return curriculum_sample(
            labels, self.difficulty, ratio=ratio, rng=rng, hardness=self.hardness
        )

    def worst_case_dataset(self) -> CANGraphDataset:
        """The heaviest epoch any run can see: all attack graphs plus the largest normal graphs.

        It has `max_epoch_size` graphs, ordered largest first (by `graph_sizes`, nodes +
        edges), so the first batch of an unshuffled loader is the heaviest batch of any epoch.
        Needs `setup()` only, not the difficulty scores.
        """
        train_set = self._require(self.train_set)
        labels, sizes = train_set.labels, train_set.graph_sizes
        normal = np.flatnonzero(labels != 1)
        num_normal = self.max_epoch_size - int(np.count_nonzero(labels == 1))
        largest_normal = normal[np.argsort(-sizes[normal], kind="stable")[:num_normal]]
        chosen = np.concatenate([np.flatnonzero(labels == 1), largest_normal])
        return train_set[chosen[np.argsort(-sizes[chosen], kind="stable")]]

    def train_dataloader(self) -> GraphLoader:
        train_set = self._require(self.train_set)
        epoch = self._current_epoch()
        batch_size = self.apply_epoch_batch_size(epoch)
        sample = self.epoch_sample(epoch)
        num_attack = int(np.count_nonzero(train_set.labels[sample] == 1))
        logger.info(
            "curriculum epoch %d/%d: %d attack + %d normal graphs (ratio 1:%.1f)",
            epoch + 1,
            self.num_epochs,
            num_attack,
            len(sample) - num_attack,
            self._ratio(epoch),
        )
        return GraphLoader(
            train_set,
            batch_size=batch_size,
            sampler=EpochOrder(self.train_order, epoch),
            num_workers=self.num_workers,
        )

    def train_order(self, epoch: int) -> np.ndarray:
        """Indices into `train_set` epoch `epoch` trains on, in order: its sample, shuffled."""
        sample = self.epoch_sample(epoch)
        shuffle_seed = int(self._seed_sequence(epoch).generate_state(1)[0])
        return sample[np.random.default_rng(shuffle_seed).permutation(len(sample))]

    def _current_epoch(self) -> int:
        trainer: pl.Trainer | None = self.trainer
        if trainer is None:
            return 0
        # Set by Lightning's data connector, not declared on the class.
        reload_every = getattr(trainer, "reload_dataloaders_every_n_epochs", None)
        if reload_every != 1:
            # Without it Lightning keeps epoch 0's loader: the curriculum would never advance.
            raise RuntimeError(
                "CurriculumDataModule needs pl.Trainer(reload_dataloaders_every_n_epochs=1) so "
                f"that every epoch draws its own sample, got {reload_every}"
            )
        return int(trainer.current_epoch)

    def _ratio(self, epoch: int) -> float:
        return curriculum_ratio(epoch, self.num_epochs, start=self.start_ratio, end=self.end_ratio)

    def _seed_sequence(self, epoch: int) -> np.random.SeedSequence:
        return np.random.SeedSequence((self.seed, epoch))
