"""`GATClassifier`: graph-level attack classifier, with teacher and student presets."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import global_mean_pool

from trainables.errors import UserError
from trainables.models.encoder import GraphAttentionEncoder
from trainables.models.features import ModelSize, check_model_size, check_vocab_size, graph_index

__all__ = ["GATClassifier", "GATConfig"]


@dataclass(frozen=True)
class GATConfig:
    """Shape of a `GATClassifier`.

    Args:
        vocab_size: Number of known CAN IDs (the embedding has `vocab_size + 1` rows).
        hidden_channels: Width of each attention head; a layer outputs
            `hidden_channels * num_heads` (heads concatenated). Default 64.
        num_layers: Number of GATConv layers. Default 5.
        num_heads: Attention heads per layer. Default 8.
        id_embedding_dim: Width of the CAN-ID embedding. Default 32.
        dropout: Dropout probability after each layer, on attention and in the head. Default 0.2.
        num_classes: Output classes (0 = normal, 1 = attack). Default 2.

    Example:
        >>> GATConfig.preset("student", vocab_size=40).num_layers
        2
    """

    vocab_size: int
    hidden_channels: int = 64
    num_layers: int = 5
    num_heads: int = 8
    id_embedding_dim: int = 32
    dropout: float = 0.2
    num_classes: int = 2

    def __post_init__(self) -> None:
        check_vocab_size(self.vocab_size)
        for name in ("hidden_channels", "num_layers", "num_heads", "id_embedding_dim"):
            if getattr(self, name) < 1:
                raise UserError(f"GAT {name} must be >= 1, got {getattr(self, name)}")
        if self.num_classes < 2:
            raise UserError(f"GAT num_classes must be >= 2, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"GAT dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def preset(cls, size: ModelSize | str, *, vocab_size: int) -> GATConfig:
        """Return the teacher (64 x 8 heads, 5 layers) or student (24 x 4 heads, 2 layers) shape.

        Raises:
            UserError: `size` is neither "teacher" nor "student".
        """
        if check_model_size(size) == "teacher":
            return cls(vocab_size=vocab_size)
        return cls(
            vocab_size=vocab_size,
            hidden_channels=24,
            num_layers=2,
            num_heads=4,
            id_embedding_dim=8,
            dropout=0.1,
        )


class GATClassifier(nn.Module):
    """GAT graph classifier: ID embedding, GATConv stack, jumping knowledge, mean pool, MLP.

    The outputs of all layers are concatenated per node (jumping knowledge), mean-pooled per
    graph into the graph embedding (`embedding_dim` wide), and a two-layer MLP maps it to logits.
    `forward` returns logits; `encode` returns the pooled graph embedding and `classify` maps an
    embedding to logits, so fusion and distillation get both from one pass:
    `emb = model.encode(batch); logits = model.classify(emb)`.

    Args:
        config: The model's shape; see `GATConfig.preset`.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> model = GATClassifier(GATConfig.preset("student", vocab_size=10))
        >>> g = Data(x=torch.rand(4, 11), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
        ...          edge_attr=torch.rand(3, 6))
        >>> tuple(model(g).shape), tuple(model.encode(g).shape) == (1, model.embedding_dim)
        ((1, 2), True)
    """

    def __init__(self, config: GATConfig) -> None:
        super().__init__()
        self.config = config
        layer_width = config.hidden_channels * config.num_heads
        self.encoder = GraphAttentionEncoder(
            vocab_size=config.vocab_size,
            id_embedding_dim=config.id_embedding_dim,
            layer_channels=(layer_width,) * config.num_layers,
            num_heads=config.num_heads,
            dropout=config.dropout,
        )
        self.embedding_dim = layer_width * config.num_layers
        self.head = nn.Sequential(
            nn.Linear(self.embedding_dim, config.hidden_channels),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_channels, config.num_classes),
        )

    def encode(self, data: Data) -> Tensor:
        """Return the pooled graph embedding, `[num_graphs, embedding_dim]`."""
        batch, num_graphs = graph_index(data)
        nodes = torch.cat(self.encoder(data), dim=1)
        return global_mean_pool(nodes, batch, size=num_graphs)

    def classify(self, embedding: Tensor) -> Tensor:
        """Map pooled graph embeddings `[num_graphs, embedding_dim]` to logits."""
        return self.head(embedding)

    def forward(self, data: Data) -> Tensor:
        """Return class logits, `[num_graphs, num_classes]`."""
        return self.classify(self.encode(data))
