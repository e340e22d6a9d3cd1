"""Hand-made CAN graphs in the data pipeline's format, for the model tests."""

from __future__ import annotations

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

VOCAB_SIZE = 12


def make_graph(
    num_nodes: int,
    *,
    seed: int = 0,
    label: int = 0,
    ids: list[int] | None = None,
    level: float = 0.2,
    noise: float = 0.05,
) -> Data:
    """A window graph: a chain of transitions, a self-loop on node 0, payload means near `level`.

    Args:
        num_nodes: Number of distinct CAN IDs in the window.
        seed: Seeds the features and the extra edges.
        label: Graph label (1 = attack).
        ids: Vocabulary index of each node; default `1..num_nodes` (wrapping in the vocabulary).
        level: Centre of the payload-byte means.
        noise: Spread of the payload-byte means around `level`.
    """
    g = torch.Generator().manual_seed(seed)
    if ids is None:
        ids = [1 + i % VOCAB_SIZE for i in range(num_nodes)]
    x = torch.empty(num_nodes, 11)
    x[:, 0] = torch.tensor(ids, dtype=torch.float32)
    x[:, 1:9] = (level + noise * torch.randn(num_nodes, 8, generator=g)).clamp(0, 1)
    x[:, 9] = torch.rand(num_nodes, generator=g)
    x[:, 10] = torch.rand(num_nodes, generator=g)
    src = [*range(num_nodes - 1), 0]
    dst = [*range(1, num_nodes), 0]
    edge_index = torch.tensor([src, dst], dtype=torch.long)
    edge_attr = torch.rand(edge_index.size(1), 6, generator=g)
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr, y=torch.tensor([label]))


def collate(graphs: list[Data]) -> Batch:
    """The batch a `DataLoader` would yield for `graphs`, in order."""
    return next(iter(DataLoader(graphs, batch_size=len(graphs), shuffle=False)))


def small_batch() -> Batch:
    """Three graphs of 1 (a lone node with a self-loop), 3 and 7 nodes."""
    return collate([make_graph(1, seed=1), make_graph(3, seed=2, label=1), make_graph(7, seed=3)])
