"""`CANGraphDataModule`: train/validation/test graphs for Lightning, with tunable batch sizes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import Sampler

from trainables.batching.schedules import log_batch_size_change
from trainables.data.dataset import CANGraphDataset, GraphLoader
from trainables.data.source import GraphSource, LoadedSplit, load_split
from trainables.data.vocab import Vocabulary
from trainables.errors import UserError, require_int

__all__ = ["DEFAULT_BATCH_SIZE", "CANGraphDataModule", "EpochOrder", "stratified_split"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 64


class EpochOrder(Sampler[int]):
    """Yields `order(epoch)`: each epoch's training order, known before training starts.

    Lightning calls `set_epoch` at the start of every epoch. Because the order is a function of
    the epoch, the batch-size tuner can probe the heaviest batches the run will actually meet.

    Args:
        order: Indices into the dataset, per epoch.
        epoch: The epoch to start at.
    """

    def __init__(self, order: Callable[[int], np.ndarray], epoch: int = 0) -> None:
        self.order = order
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch).tolist())

    def __len__(self) -> int:
        return len(self.order(self.epoch))


def stratified_split(
    labels: np.ndarray, *, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of indices into (train, val) keeping each class's share in both.

    Each class puts `round(val_fraction * count)` of its members in validation, at least one
    when it has two or more members.
    """
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        num_val = round(val_fraction * len(members))
        if len(members) >= 2:
            num_val = min(max(num_val, 1), len(members) - 1)
        val.append(members[:num_val])
        train.append(members[num_val:])
    if not train:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class CANGraphDataModule(pl.LightningDataModule):
    """Graphs of one dataset: a seeded stratified train/val split of the training splits, and
    each test split on its own.

    `batch_size` is a plain attribute so Lightning's batch-size tuner can scale it; validation
    and test use `eval_batch_size`, which resolves to the explicit eval size, else `batch_size`,
    else `DEFAULT_BATCH_SIZE`.

    Args:
        source: Where graphs come from (default: the embedded synthetic traffic).
        batch_size: Training batch size (default 64).
        eval_batch_size: Validation/test batch size (default: `batch_size`).
        val_fraction: Share of training graphs held out for validation (default 0.2).
        train_on_normal_only: Keep only normal graphs for training (autoencoders); validation
            keeps both classes (default False).
        seed: Seed of the split and of the training shuffle (default 0).
        num_workers: DataLoader worker processes (default 0: graphs are in memory).

    Example:
        >>> dm = CANGraphDataModule(batch_size=32)
        >>> dm.batch_size, dm.eval_batch_size
        (32, 32)
    """

    def __init__(
        self,
        source: GraphSource | None = None,
        *,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        val_fraction: float = 0.2,
        train_on_normal_only: bool = False,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        for option, value in (
            ("--batch-size", batch_size),
            ("--eval-batch-size", eval_batch_size),
        ):
            if value is not None:
                require_int(option, value, minimum=1)
        if not 0.0 < val_fraction < 1.0:
            raise UserError(f"--val-fraction must be in (0, 1), got {val_fraction}")
        self.source = source or GraphSource()
        self.batch_size: int = batch_size or DEFAULT_BATCH_SIZE
        self._eval_batch_size = eval_batch_size
        self.val_fraction = val_fraction
        self.train_on_normal_only = train_on_normal_only
        self.seed = seed
        self.num_workers = num_workers
        self.train_set: CANGraphDataset | None = None
        self.val_set: CANGraphDataset | None = None
        self.test_sets: dict[str, CANGraphDataset] = {}
        self.vocab: Vocabulary | None = None
        self.loaded: dict[str, LoadedSplit] = {}
        self.batch_sizes_per_epoch: list[int] | None = None

    @property
    def eval_batch_size(self) -> int:
        return self._eval_batch_size or self.batch_size or DEFAULT_BATCH_SIZE

    @eval_batch_size.setter
    def eval_batch_size(self, value: int | None) -> None:
        self._eval_batch_size = value

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train = load_split(self.source, "train")
        self.loaded["train"] = train
        self.vocab = train.vocab
        full = CANGraphDataset(train.graphs)
        train_idx, val_idx = stratified_split(
            full.labels, val_fraction=self.val_fraction, seed=self.seed
        )
        if self.train_on_normal_only:
            train_idx = train_idx[full.labels[train_idx] == 0]
        self.train_set, self.val_set = full[train_idx], full[val_idx]
        for name in self.source.split_names()[1]:
            loaded = load_split(self.source, name)
            self.loaded[name] = loaded
            self.test_sets[name] = CANGraphDataset(loaded.graphs)
        logger.info(
            "data: %d train, %d val graphs, test splits %s, vocabulary %d IDs",
            len(self.train_set),
            len(self.val_set),
            {n: len(d) for n, d in self.test_sets.items()} or "none",
            len(self.vocab),
        )

    def _require(self, dataset: CANGraphDataset | None) -> CANGraphDataset:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        return dataset

    def current_epoch(self) -> int:
        """The attached trainer's epoch (0 when no trainer is attached)."""
        trainer: pl.Trainer | None = self.trainer
        return 0 if trainer is None else int(trainer.current_epoch)

    def apply_epoch_batch_size(self, epoch: int) -> int:
        """Set `batch_size` to the schedule's size for `epoch` (if a schedule is set).

        A size schedule needs the loader rebuilt each epoch:
        `pl.Trainer(reload_dataloaders_every_n_epochs=1)`.
        """
        if self.batch_sizes_per_epoch:
            size = self.batch_sizes_per_epoch[min(epoch, len(self.batch_sizes_per_epoch) - 1)]
            num_epochs = len(self.batch_sizes_per_epoch)
            log_batch_size_change(
                epoch, self.batch_size, size, num_epochs=num_epochs, logger=logger
            )
            self.batch_size = size
        return self.batch_size

    def train_order(self, epoch: int) -> np.ndarray:
        """Indices into `train_set` in the order epoch `epoch` trains on them (seeded shuffle)."""
        size = len(self._require(self.train_set))
        return np.random.default_rng([self.seed, epoch]).permutation(size)

    def train_orders(self, num_epochs: int) -> list[np.ndarray]:
        """`train_order` of each of the first `num_epochs` epochs."""
        return [self.train_order(epoch) for epoch in range(num_epochs)]

    def train_dataloader(self) -> GraphLoader:
        epoch = self.current_epoch()
        return GraphLoader(
            self._require(self.train_set),
            batch_size=self.apply_epoch_batch_size(epoch),
            sampler=EpochOrder(self.train_order, epoch),
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> GraphLoader:
        return GraphLoader(
            self._require(self.val_set),
            batch_size=self.eval_batch_size,
            num_workers=self.num_workers,
        )

    def test_dataloader(self) -> list[GraphLoader]:
        return [
            GraphLoader(d, batch_size=self.eval_batch_size, num_workers=self.num_workers)
            for d in self.test_sets.values()
        ]
