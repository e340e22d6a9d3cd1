"""The heaviest batch of each size a tuner should probe: what makes its maximum hold for a run.

A batch's memory grows with its graphs' nodes and edges. Two ways to find the heaviest batch of
a size, both serving exactly `size` graphs:

- `LargestFirst`: the `size` largest graphs of a set, whatever order a run meets them in. Safe
  for any run, but on a heavy-tailed size distribution far heavier than any batch a shuffled
  epoch holds, so the maximum it finds is well below what the run could use.
- `HeaviestWindows`: the heaviest `size` consecutive graphs in the orders the run's epochs will
  actually train in (a datamodule's `train_orders`). A loader cuts an epoch's order into
  consecutive batches, so every batch of every epoch, at this size or any smaller one (a
  schedule's), lies inside one such window: the maximum found holds for the whole run.

Past the largest real batch (the whole of the longest epoch) both cycle their graphs, so the
tuner meets a batch heavier than any real one and its search turns back there.

`ProbeDataModule` serves the heaviest batch of whatever size Lightning's tuner asks for, and
`largest_first` orders a set for `LargestFirst`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pytorch_lightning as pl

from trainables.data.dataset import CANGraphDataset, GraphLoader
from trainables.data.graphs import GraphArrays

__all__ = ["HeaviestWindows", "LargestFirst", "ProbeDataModule", "WorstBatches", "largest_first"]


class WorstBatches(Protocol):
    """What a tuner probe serves: the heaviest batch of each size."""

    def __len__(self) -> int:
        """Graphs in the largest real batch (larger sizes cycle)."""
        ...

    def batch(self, size: int) -> CANGraphDataset:
        """The heaviest batch of `size` graphs."""
        ...

    def weight(self, size: int) -> int:
        """Nodes + edges of `batch(size)`, without building it."""
        ...


class LargestFirst:
    """A set already ordered largest first: the heaviest batch of a size is its first graphs."""

    def __init__(self, dataset: CANGraphDataset) -> None:
        if len(dataset) == 0:
            raise ValueError("a probe set needs at least one graph")
        self.dataset = dataset
        self._cumsum = np.concatenate([[0], np.cumsum(dataset.graph_sizes, dtype=np.int64)])

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, size: int) -> CANGraphDataset:
        return self.dataset[np.arange(size) % len(self.dataset)]

    def weight(self, size: int) -> int:
        cycles, rest = divmod(size, len(self.dataset))
        return int(cycles * self._cumsum[-1] + self._cumsum[rest])


class HeaviestWindows:
    """The heaviest `size` consecutive graphs of any epoch's training order.

    Weight is nodes + edges (`CANGraphDataset.graph_sizes`), as in `largest_first`.

    Args:
        dataset: The training set the orders index.
        orders: Each epoch's training order, as indices into `dataset` (empty ones are skipped).

    Raises:
        ValueError: No epoch has a graph.
    """

    def __init__(self, dataset: CANGraphDataset, orders: Sequence[np.ndarray]) -> None:
        self.dataset = dataset
        self.orders = [np.asarray(order, dtype=np.int64) for order in orders if len(order)]
        if not self.orders:
            raise ValueError("the run's epochs hold no graphs: nothing to probe")
        self._weights = dataset.graph_sizes.astype(np.int64)
        self._cumsums = [np.concatenate([[0], np.cumsum(self._weights[o])]) for o in self.orders]

    def __len__(self) -> int:
        return max(len(order) for order in self.orders)

    def window(self, size: int) -> np.ndarray:
        """Indices into `dataset` of the heaviest `size` consecutive graphs of any epoch."""
        if size < 1:
            raise ValueError(f"a batch holds at least one graph, got {size=}")
        best, best_weight = self.orders[0][:0], -1
        for order, cumsum in zip(self.orders, self._cumsums, strict=True):
            if size >= len(order):
                start, weight = 0, int(cumsum[-1])
            else:
                sums = cumsum[size:] - cumsum[:-size]
                start = int(np.argmax(sums))
                weight = int(sums[start])
            if weight > best_weight:
                best, best_weight = order[start : start + size], weight
        return np.resize(best, size)  # cycled past the longest epoch

    def batch(self, size: int) -> CANGraphDataset:
        return self.dataset[self.window(size)]

    def weight(self, size: int) -> int:
        return int(self._weights[self.window(size)].sum())

    def fingerprint(self) -> str:
        """A digest of the orders: runs whose epochs train in the same orders share a maximum."""
        digest = hashlib.sha256()
        for order in self.orders:
            digest.update(order.tobytes())
            digest.update(b"|")
        return digest.hexdigest()[:16]


def largest_first(graphs: GraphArrays, *, limit: int | None = None) -> CANGraphDataset:
    """The graphs sorted by nodes + edges, largest first (the `limit` largest when given)."""
    sizes = graphs.num_nodes_per_graph + graphs.num_edges_per_graph
    order = np.argsort(-sizes, kind="stable")[:limit]
    return CANGraphDataset(graphs.select(order))


class ProbeDataModule(pl.LightningDataModule):
    """Serves the heaviest batch of `batch_size` graphs, over and over; the tuner scales the size.

    Every batch the loader yields is the heaviest batch of its size, cycled to `length` graphs:
    Lightning's search only moves on from a size smaller than what its loader holds. For a
    training probe, validation is one single-graph batch (the tuner runs a few validation steps
    too); for an eval probe, validation serves the heaviest batches.

    Args:
        probe: The heaviest batches (`HeaviestWindows` of a run's epochs), or a set already
            ordered largest first (`LargestFirst`).
        batch_size: Starting size (the tuner overwrites it).
        for_eval: Whether the probe measures evaluation instead of training.
        length: Graphs the loader holds (default: the probe's largest real batch).
    """

    is_probe = True
    """Modules that fit something on the training data in `setup` (fusion's VGAE score scale)
    say so at debug level only for a probe: its graphs are the tuner's, not the run's."""

    def __init__(
        self,
        probe: WorstBatches | CANGraphDataset,
        *,
        batch_size: int,
        for_eval: bool,
        length: int | None = None,
    ) -> None:
        super().__init__()
        self.probe = LargestFirst(probe) if isinstance(probe, CANGraphDataset) else probe
        self.batch_size = batch_size
        self.for_eval = for_eval
        self.length = len(self.probe) if length is None else length

    def _served(self) -> GraphLoader:
        batch = self.probe.batch(self.batch_size)
        cycled = batch[np.arange(max(self.length, len(batch))) % len(batch)]
        return GraphLoader(cycled, batch_size=self.batch_size, shuffle=False)

    def train_dataloader(self) -> GraphLoader:
        return self._served()

    def val_dataloader(self) -> GraphLoader:
        if self.for_eval:
            return self._served()
        return GraphLoader(self.probe.batch(1), batch_size=1)
