"""`VGAE`: variational graph autoencoder over CAN graphs, with teacher and student presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from trainables.errors import UserError
from trainables.models.encoder import GraphAttentionEncoder
from trainables.models.features import (
    NUM_CONTINUOUS_FEATURES,
    ModelSize,
    check_model_size,
    check_vocab_size,
)

__all__ = ["VGAE", "VGAEConfig", "VGAEOutput"]

_MAX_ABS_LOGVAR = 10.0


@dataclass(frozen=True)
class VGAEConfig:
    """Shape of a `VGAE`.

    Heads are concatenated and each head is `width // num_heads` wide, so layer `i` outputs
    exactly `hidden_channels[i]` (teacher: 1024 -> 512 -> 96 with 4 heads of 256, 128, 24) and
    every width must be divisible by `num_heads`.

    Args:
        vocab_size: Number of known CAN IDs; the ID and neighbour decoders have
            `vocab_size + 1` outputs (index 0 = out-of-vocabulary).
        hidden_channels: Output width of each encoder GATConv layer. Default (1024, 512, 96).
        latent_dim: Width of the latent node code `z`. Default 96.
        num_heads: Attention heads per encoder layer. Default 4.
        id_embedding_dim: Width of the CAN-ID embedding. Default 32.
        dropout: Dropout probability in the encoder. Default 0.1.

    Example:
        >>> VGAEConfig.preset("student", vocab_size=40).hidden_channels
        (80, 40, 16)
    """

    vocab_size: int
    hidden_channels: tuple[int, ...] = (1024, 512, 96)
    latent_dim: int = 96
    num_heads: int = 4
    id_embedding_dim: int = 32
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_vocab_size(self.vocab_size)
        for name in ("latent_dim", "num_heads", "id_embedding_dim"):
            if getattr(self, name) < 1:
                raise UserError(f"VGAE {name} must be >= 1, got {getattr(self, name)}")
        if not self.hidden_channels or any(
            w < self.num_heads or w % self.num_heads for w in self.hidden_channels
        ):
            raise UserError(
                "VGAE hidden_channels must be non-empty positive multiples of"
                f" num_heads={self.num_heads}, got {self.hidden_channels}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"VGAE dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def preset(cls, size: ModelSize | str, *, vocab_size: int) -> VGAEConfig:
        """Return the teacher ((1024, 512, 96), latent 96, 4 heads) or student shape.

        The student is (80, 40, 16), latent 16, 1 head, ID embedding 8.

        Raises:
            UserError: `size` is neither "teacher" nor "student".
        """
        if check_model_size(size) == "teacher":
            return cls(vocab_size=vocab_size)
        return cls(
            vocab_size=vocab_size,
            hidden_channels=(80, 40, 16),
            latent_dim=16,
            num_heads=1,
            id_embedding_dim=8,
        )


class VGAEOutput(NamedTuple):
    """What `VGAE.forward` returns; every tensor has one row per node.

    Attributes:
        features: Reconstructed continuous node features (columns 1-10), in (0, 1), `[N, 10]`.
        id_logits: Logits of each node's CAN-ID vocabulary index, `[N, vocab_size + 1]`.
        neighbour_logits: Logits of each vocabulary index being a neighbour, `[N, vocab_size + 1]`.
        mu: Latent mean, `[N, latent_dim]`.
        logvar: Latent log-variance, clamped to [-10, 10], `[N, latent_dim]`.
        z: Latent sample in training mode, `mu` in eval mode, `[N, latent_dim]`.
    """

    features: Tensor
    id_logits: Tensor
    neighbour_logits: Tensor
    mu: Tensor
    logvar: Tensor
    z: Tensor


def _decoder(in_channels: int, hidden_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_channels, hidden_channels),
        nn.ReLU(),
        nn.Linear(hidden_channels, out_channels),
    )


class VGAE(nn.Module):
    """Variational graph autoencoder: a GAT encoder to `mu`/`logvar` and three node decoders.

    The decoders reconstruct each node's 10 continuous features, classify its CAN ID, and
    predict the multi-hot set of its neighbours' CAN IDs. Train it on normal (attack-free)
    graphs only, with `vgae_loss`; a graph's anomaly score (`graph_anomaly_scores`) is then its
    reconstruction error, high for traffic unlike the training data. In eval mode `z = mu`, so
    scores are deterministic.

    Args:
        config: The model's shape; see `VGAEConfig.preset`.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> model = VGAE(VGAEConfig.preset("student", vocab_size=10)).eval()
        >>> g = Data(x=torch.rand(4, 11), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
        ...          edge_attr=torch.rand(3, 6))
        >>> out = model(g)
        >>> tuple(out.features.shape), tuple(out.id_logits.shape), tuple(out.z.shape)
        ((4, 10), (4, 11), (4, 16))
    """

    def __init__(self, config: VGAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = GraphAttentionEncoder(
            vocab_size=config.vocab_size,
            id_embedding_dim=config.id_embedding_dim,
            layer_channels=config.hidden_channels,
            num_heads=config.num_heads,
            dropout=config.dropout,
        )
        last = config.hidden_channels[-1]
        num_ids = config.vocab_size + 1
        self.mu = nn.Linear(last, config.latent_dim)
        self.logvar = nn.Linear(last, config.latent_dim)
        self.feature_decoder = _decoder(config.latent_dim, last, NUM_CONTINUOUS_FEATURES)
        self.id_decoder = _decoder(config.latent_dim, last, num_ids)
        self.neighbour_decoder = _decoder(config.latent_dim, last, num_ids)

    def encode(self, data: Data) -> tuple[Tensor, Tensor]:
        """Return `(mu, logvar)`, each `[num_nodes, latent_dim]`."""
        h = self.encoder(data)[-1]
        # The clamp keeps exp(logvar) finite early in training, when the encoder is untrained.
        return self.mu(h), self.logvar(h).clamp(-_MAX_ABS_LOGVAR, _MAX_ABS_LOGVAR)

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return `(features, id_logits, neighbour_logits)` decoded from latent codes `z`."""
        features = torch.sigmoid(self.feature_decoder(z))
        return features, self.id_decoder(z), self.neighbour_decoder(z)

    def forward(self, data: Data) -> VGAEOutput:
        """Encode, sample `z` (training mode) or take `z = mu` (eval mode), and decode."""
        mu, logvar = self.encode(data)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        features, id_logits, neighbour_logits = self.decode(z)
        return VGAEOutput(features, id_logits, neighbour_logits, mu, logvar, z)
