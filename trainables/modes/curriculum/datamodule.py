"""`CurriculumDataModule`: a datamodule whose training set is redrawn every epoch."""

from __future__ import annotations

import logging

import numpy as np
import pytorch_lightning as pl

from trainables.data.datamodule import CANGraphDataModule, EpochOrder
from trainables.data.dataset import CANGraphDataset, GraphLoader
from trainables.data.source import GraphSource
from trainables.errors import UserError
from trainables.modes.curriculum.sampling import (
    check_ratio_range,
    curriculum_ratio,
    curriculum_sample,
    max_epoch_size,
    num_attack_graphs,
)

__all__ = ["CurriculumDataModule"]

logger = logging.getLogger(__name__)


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
        check_ratio_range(start_ratio, end_ratio)
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
        num_attack_graphs(self._require(self.train_set).labels)

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
