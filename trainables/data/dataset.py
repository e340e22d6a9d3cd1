"""`CANGraphDataset`: collated graphs as a PyTorch Geometric `InMemoryDataset`."""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.data.separate import separate

from trainables.data.graphs import GraphArrays

__all__ = ["CANGraphDataset"]


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
