"""`GraphAttentionEncoder`: CAN-ID embedding plus a stack of edge-aware GATConv layers."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import GATConv
from torch_geometric.utils import add_remaining_self_loops

from trainables.errors import UserError
from trainables.models.features import (
    NUM_CONTINUOUS_FEATURES,
    NUM_EDGE_FEATURES,
    check_graph,
    check_vocab_size,
    split_node_features,
)

__all__ = ["GraphAttentionEncoder"]


class GraphAttentionEncoder(nn.Module):
    """Node encoder shared by the GAT classifier and the VGAE.

    Each node's input is the embedding of its CAN-ID vocabulary index (node feature 0)
    concatenated with the 10 continuous node features. Each layer is a `GATConv` with
    `edge_dim=6` (so `edge_attr` shapes the attention), heads concatenated, followed by ReLU and
    dropout. Self-loops are added once per forward with `add_remaining_self_loops` (edge
    attributes filled with the mean of the node's incoming edges) and the convolutions are built
    with `add_self_loops=False`: `GATConv`'s own handling would drop the self-loops the graph
    already has, and with them the edge attributes of a message repeating its own ID.

    Args:
        vocab_size: Number of known CAN IDs; the embedding has `vocab_size + 1` rows.
        id_embedding_dim: Width of the CAN-ID embedding.
        layer_channels: Output width of each layer, heads included; each must be divisible by
            `num_heads` (each head is `width // num_heads` wide).
        num_heads: Attention heads per layer.
        dropout: Dropout probability after each layer and on the attention weights.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> enc = GraphAttentionEncoder(vocab_size=5, id_embedding_dim=4,
        ...                             layer_channels=(8, 8), num_heads=2, dropout=0.0)
        >>> g = Data(x=torch.rand(3, 11), edge_index=torch.tensor([[0, 1], [1, 2]]),
        ...          edge_attr=torch.rand(2, 6))
        >>> [tuple(h.shape) for h in enc(g)]
        [(3, 8), (3, 8)]
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        id_embedding_dim: int,
        layer_channels: tuple[int, ...],
        num_heads: int,
        dropout: float,
    ) -> None:
        super().__init__()
        check_vocab_size(vocab_size)
        if not layer_channels:
            raise UserError("a graph encoder needs at least one layer, got layer_channels=()")
        for width in layer_channels:
            if width < num_heads or width % num_heads:
                raise UserError(
                    f"each layer width must be a positive multiple of num_heads={num_heads},"
                    f" got {layer_channels=}; change the widths or the number of heads"
                )
        self.vocab_size = vocab_size
        self.layer_channels = layer_channels
        self.id_embedding = nn.Embedding(vocab_size + 1, id_embedding_dim)
        self.convs = nn.ModuleList()
        in_channels = id_embedding_dim + NUM_CONTINUOUS_FEATURES
        for width in layer_channels:
            self.convs.append(
                GATConv(
                    in_channels,
                    width // num_heads,
                    heads=num_heads,
                    concat=True,
                    dropout=dropout,
                    add_self_loops=False,
                    edge_dim=NUM_EDGE_FEATURES,
                )
            )
            in_channels = width
        self.dropout = nn.Dropout(dropout)

    def forward(self, data: Data) -> list[Tensor]:
        """Return each layer's node representations, `[num_nodes, layer_channels[i]]`."""
        check_graph(data)
        ids, continuous = split_node_features(data.x, vocab_size=self.vocab_size)
        h = torch.cat([self.id_embedding(ids), continuous], dim=1)
        edge_index, edge_attr = add_remaining_self_loops(
            data.edge_index, data.edge_attr, fill_value="mean", num_nodes=h.size(0)
        )
        outputs: list[Tensor] = []
        for conv in self.convs:
            h = self.dropout(torch.relu(conv(h, edge_index, edge_attr)))
            outputs.append(h)
        return outputs
