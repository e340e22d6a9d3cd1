"""`CANGraphDataset`: collated graphs as a PyTorch Geometric `InMemoryDataset`, and
`GraphLoader`, which batches them in one vectorised step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch_geometric.data import Batch, Data, InMemoryDataset
from torch_geometric.data.separate import separate

from trainables.data.graphs import GraphArrays

__all__ = ["CANGraphDataset", "GraphLoader"]


class CANGraphDataset(InMemoryDataset):
    """Graphs of one split, served one `Data` at a time to PyG's `DataLoader`.

    Each graph has `x` `[nodes, 11]`, `edge_index` `[2, edges]` (local), `edge_attr`
    `[edges, 6]` and `y` `[1]`. Subsets (`dataset[index]`) share the storage.

    Args:
        graphs: Collated graphs, e.g. `load_split(...).graphs`.

    Example:
        >>> from trainables.data import Capture, Vocabulary, build_graphs
        >>> c = Capture.from_arrays("demo", timestamp=np.arange(6.0), can_id=[1, 2, 1, 3, 3, 1],
        ...                         payload=np.zeros((6, 8)), attack=[0, 0, 0, 0, 1, 0])
        >>> ds = CANGraphDataset(build_graphs([c], Vocabulary.from_ids([1, 2]), window=3))
        >>> len(ds), ds[1].num_nodes, int(ds[1].y)
        (2, 2, 1)
    """

    def __init__(self, graphs: GraphArrays) -> None:
        super().__init__(root=None, log=False)
        self.graphs = graphs
        self._data = Data(
            x=torch.from_numpy(graphs.x),
            edge_index=torch.from_numpy(graphs.edge_index),
            edge_attr=torch.from_numpy(graphs.edge_attr),
            y=torch.from_numpy(graphs.y),
        )
        graph_ptr = torch.arange(graphs.num_graphs + 1)
        edge_ptr = torch.from_numpy(graphs.edge_ptr)
        self.slices = {
            "x": torch.from_numpy(graphs.node_ptr),
            "edge_index": edge_ptr,
            "edge_attr": edge_ptr,
            "y": graph_ptr,
        }

    @property
    def labels(self) -> np.ndarray:
        """Graph labels of the graphs this (possibly subset) dataset serves, in order."""
        return self.graphs.y[self.indices()]

    @property
    def graph_sizes(self) -> np.ndarray:
        """Nodes + edges of each graph this dataset serves: what a batch's memory grows with."""
        sizes = self.graphs.num_nodes_per_graph + self.graphs.num_edges_per_graph
        return sizes[self.indices()]

    def collate(self, index: Sequence[int] | np.ndarray) -> Batch:
        """The graphs at `index` (positions in this dataset) as one PyG `Batch`, gathered from
        the shared storage with a few array operations.

        The same tensors as PyG's `Collater` makes of `[self[i] for i in index]` (`x`,
        `edge_index` offset per graph, `edge_attr`, `y`, `batch`, `ptr`), without a `Data` per
        graph: no per-graph Python work, and none of the thousands of small allocations that
        stay behind in glibc's heap (where a `RLIMIT_DATA` budget counts them) after a large
        batch.
        """
        positions = np.asarray(index, dtype=np.int64)
        subset = self._indices
        rows = positions if subset is None else np.asarray(subset, dtype=np.int64)[positions]
        graphs = self.graphs.select(rows)
        nodes = graphs.num_nodes_per_graph
        offsets = np.repeat(graphs.node_ptr[:-1], graphs.num_edges_per_graph)
        return Batch(
            x=torch.from_numpy(graphs.x),
            edge_index=torch.from_numpy(graphs.edge_index + offsets),
            edge_attr=torch.from_numpy(graphs.edge_attr),
            y=torch.from_numpy(graphs.y),
            batch=torch.from_numpy(np.repeat(np.arange(len(nodes), dtype=np.int64), nodes)),
            ptr=torch.from_numpy(graphs.node_ptr),
        )

    def __getitems__(self, index: list[int]) -> Batch:
        # PyTorch's DataLoader fetches a whole batch through this when it is defined.
        return self.collate(index)

    def get(self, idx: int) -> Data:
        """Graph `idx`: views into the shared storage, sliced on every call, never cached.

        PyG's `InMemoryDataset.get` keeps a copy of every graph it has served, shared by all
        subsets: a few KiB per graph that grow through an epoch's first pass inside a trial's
        memory budget, stay behind after the batch-size tuner's probes, and travel with every
        pickle of the dataset.
        """
        return separate(
            cls=Data, batch=self._data, idx=idx, slice_dict=self.slices, decrement=False
        )


class GraphLoader(DataLoader):
    """A `DataLoader` of `CANGraphDataset` batches, each collated in one step
    (`CANGraphDataset.collate`); it takes PyTorch's `DataLoader` arguments and yields what
    PyG's `DataLoader` yields.

    Example:
        >>> from trainables.data import Capture, Vocabulary, build_graphs
        >>> c = Capture.from_arrays("demo", timestamp=np.arange(6.0), can_id=[1, 2, 1, 3, 3, 1],
        ...                         payload=np.zeros((6, 8)), attack=[0, 0, 0, 0, 1, 0])
        >>> ds = CANGraphDataset(build_graphs([c], Vocabulary.from_ids([1, 2]), window=3))
        >>> next(iter(GraphLoader(ds, batch_size=2))).num_graphs
        2
    """

    def __init__(self, dataset: CANGraphDataset, batch_size: int = 1, **kwargs: Any) -> None:
        if not isinstance(dataset, CANGraphDataset):
            raise TypeError(f"GraphLoader batches a CANGraphDataset, got {type(dataset).__name__}")
        super().__init__(dataset, batch_size=batch_size, collate_fn=_as_is, **kwargs)


def _as_is(batch: Batch) -> Batch:
    return batch
