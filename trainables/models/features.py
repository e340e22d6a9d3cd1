"""The graph contract the models read: node and edge feature layout, model sizes, graph index."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor
from torch_geometric.data import Data

from trainables.data.graphs import NUM_EDGE_FEATURES, NUM_NODE_FEATURES
from trainables.errors import UserError

__all__ = [
    "MODEL_SIZES",
    "NUM_CONTINUOUS_FEATURES",
    "NUM_EDGE_FEATURES",
    "NUM_NODE_FEATURES",
    "ModelSize",
    "check_graph",
    "check_model_size",
    "check_vocab_size",
    "graph_index",
    "split_node_features",
]

ModelSize = Literal["teacher", "student"]
MODEL_SIZES: tuple[str, ...] = get_args(ModelSize)

# The graph contract is the data pipeline's: column 0 of `x` is the vocabulary index of the
# CAN ID (as a float), columns 1-10 are continuous features.
NUM_CONTINUOUS_FEATURES = NUM_NODE_FEATURES - 1


def check_model_size(size: str) -> ModelSize:
    """Return `size` as a `ModelSize`, or raise `UserError` naming the choices.

    Args:
        size: A preset name from the user ("teacher" or "student").

    Returns:
        The same string, typed as `ModelSize`.

    Raises:
        UserError: `size` is not one of `MODEL_SIZES`.
    """
    if size == "teacher":
        return "teacher"
    if size == "student":
        return "student"
    raise UserError(f"unknown model size {size!r}: choose one of {', '.join(MODEL_SIZES)}")


def check_vocab_size(vocab_size: int) -> None:
    """Raise `UserError` unless `vocab_size` (number of known CAN IDs) is a positive integer."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise UserError(
            f"vocab_size must be a positive int (the number of known CAN IDs), got {vocab_size!r}"
        )


def split_node_features(x: Tensor, *, vocab_size: int) -> tuple[Tensor, Tensor]:
    """Split node features into CAN-ID vocabulary indices and the 10 continuous columns.

    Column 0 holds the index as a float. It is rounded, and any index outside
    `0..vocab_size` (or NaN) becomes 0, the out-of-vocabulary row: an ID the model was not
    built for is unknown to it, so clamping it onto the last known ID would be a silent alias.

    Args:
        x: Node features, float `[num_nodes, 11]`.
        vocab_size: Number of known CAN IDs; valid indices are `0..vocab_size`.

    Returns:
        `(ids, continuous)`: int64 `[num_nodes]` in `0..vocab_size`, float `[num_nodes, 10]`.
    """
    raw = torch.nan_to_num(x[:, 0], nan=0.0).round()
    in_range = (raw >= 0) & (raw <= vocab_size)
    ids = torch.where(in_range, raw, torch.zeros_like(raw)).long()
    return ids, x[:, 1:]


def check_graph(data: Data) -> None:
    """Raise `ValueError` when a graph or batch breaks the data pipeline's feature layout.

    Args:
        data: A `Data` or a `Batch` from `torch_geometric.loader.DataLoader`.

    Raises:
        ValueError: `x` is not `[num_nodes, 11]`, or `edge_attr` is missing or not
            `[num_edges, 6]`.
    """
    x = data.x
    if x is None or x.dim() != 2 or x.size(1) != NUM_NODE_FEATURES:
        shape = None if x is None else tuple(x.shape)
        raise ValueError(f"x must be [num_nodes, {NUM_NODE_FEATURES}], got shape {shape}")
    edge_attr = data.edge_attr
    num_edges = data.edge_index.size(1)
    if edge_attr is None or tuple(edge_attr.shape) != (num_edges, NUM_EDGE_FEATURES):
        shape = None if edge_attr is None else tuple(edge_attr.shape)
        raise ValueError(
            f"edge_attr must be [num_edges={num_edges}, {NUM_EDGE_FEATURES}], got shape {shape}"
        )


def graph_index(data: Data) -> tuple[Tensor, int]:
    """Return the node-to-graph index and the number of graphs of a `Data` or a `Batch`.

    A single `Data` (no `batch` attribute) is one graph.

    Args:
        data: A `Data` or a `Batch` from `torch_geometric.loader.DataLoader`.

    Returns:
        `(batch, num_graphs)`: int64 `[num_nodes]` graph index of each node, and its count.
    """
    batch = data.batch
    if batch is None:
        return torch.zeros(data.num_nodes, dtype=torch.long, device=data.x.device), 1
    return batch, int(data.num_graphs)
