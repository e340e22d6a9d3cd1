"""Reconstruction targets of a CAN graph and the VGAE training loss."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.errors import UserError
from trainables.models.features import split_node_features
from trainables.models.vgae.model import VGAEOutput

__all__ = [
    "ReconstructionTargets",
    "VGAELoss",
    "neighbour_targets",
    "reconstruction_targets",
    "vgae_loss",
]


class ReconstructionTargets(NamedTuple):
    """What the VGAE decoders should reproduce; one row per node.

    Attributes:
        features: Continuous node features (columns 1-10 of `x`), `[N, 10]`.
        ids: CAN-ID vocabulary index, int64 in `0..vocab_size`, `[N]`.
        neighbours: Multi-hot set of the node's neighbours' vocabulary indices,
            `[N, vocab_size + 1]`.
    """

    features: Tensor
    ids: Tensor
    neighbours: Tensor


class VGAELoss(NamedTuple):
    """The VGAE loss and its unweighted components (0-dim tensors; `total` has the graph)."""

    total: Tensor
    feature: Tensor
    id: Tensor
    neighbour: Tensor
    kl: Tensor


def neighbour_targets(ids: Tensor, edge_index: Tensor, *, num_ids: int) -> Tensor:
    """Multi-hot neighbour-ID sets of every node, built with one scatter over the edges.

    A node's neighbours are its predecessors and its successors (edges are transitions between
    consecutive messages, so both say which IDs the node's messages sit next to); a self-loop
    puts the node's own ID in its set. Batches need no per-graph loop: edges never cross graphs.

    Args:
        ids: Vocabulary index of each node, int64 `[N]`, in `0..num_ids - 1`.
        edge_index: int64 `[2, E]`.
        num_ids: Width of the multi-hot vector (`vocab_size + 1`).

    Returns:
        float `[N, num_ids]`, 1.0 where that index is a neighbour's ID.

    Example:
        >>> neighbour_targets(torch.tensor([2, 1]), torch.tensor([[0], [1]]), num_ids=3)
        tensor([[0., 1., 0.],
                [0., 0., 1.]])
    """
    num_nodes = ids.size(0)
    src, dst = edge_index
    nodes = torch.cat([src, dst])
    other_ids = torch.cat([ids[dst], ids[src]])
    flat = torch.zeros(num_nodes * num_ids, dtype=torch.float32, device=ids.device)
    flat.scatter_(0, nodes * num_ids + other_ids, 1.0)
    return flat.view(num_nodes, num_ids)


def reconstruction_targets(
    x: Tensor, edge_index: Tensor, *, vocab_size: int
) -> ReconstructionTargets:
    """Build the VGAE's targets from a graph's (or a batch's) node features and edges.

    Args:
        x: Node features, `[N, 11]` (column 0 the vocabulary index).
        edge_index: int64 `[2, E]`.
        vocab_size: Number of known CAN IDs; out-of-range indices count as 0 (unknown).

    Returns:
        The features, IDs and neighbour sets to reconstruct.
    """
    ids, features = split_node_features(x, vocab_size=vocab_size)
    neighbours = neighbour_targets(ids, edge_index, num_ids=vocab_size + 1)
    return ReconstructionTargets(features, ids, neighbours)


def _check_weight(name: str, value: float) -> None:
    if not value >= 0.0:
        raise UserError(f"VGAE loss {name} must be >= 0, got {value}")


def vgae_loss(
    output: VGAEOutput,
    targets: ReconstructionTargets,
    *,
    id_weight: float = 0.1,
    neighbour_weight: float = 0.05,
    kl_weight: float = 0.01,
) -> VGAELoss:
    """VGAE loss: MSE(features) + 0.1 CE(ID) + 0.05 BCE(neighbours) + 0.01 KL.

    Each term is a mean over the nodes of the batch (MSE and BCE also over their columns); the
    KL divergence to N(0, I) is summed over latent dimensions and averaged over nodes. Train on
    normal graphs only: the anomaly score is the reconstruction error, so the model must not
    learn to reconstruct attacks.

    Args:
        output: The VGAE's output for a batch.
        targets: `reconstruction_targets` of the same batch.
        id_weight: Weight of the CAN-ID cross-entropy. Default 0.1.
        neighbour_weight: Weight of the neighbour-set binary cross-entropy. Default 0.05.
        kl_weight: Weight of the KL divergence. Default 0.01.

    Returns:
        The weighted total and the four unweighted components.

    Raises:
        UserError: A weight is negative.
    """
    for name, value in (
        ("id_weight", id_weight),
        ("neighbour_weight", neighbour_weight),
        ("kl_weight", kl_weight),
    ):
        _check_weight(name, value)
    feature = F.mse_loss(output.features, targets.features)
    id_loss = F.cross_entropy(output.id_logits, targets.ids)
    neighbour = F.binary_cross_entropy_with_logits(output.neighbour_logits, targets.neighbours)
    kl = -0.5 * torch.mean(
        torch.sum(1 + output.logvar - output.mu.pow(2) - output.logvar.exp(), dim=1)
    )
    total = feature + id_weight * id_loss + neighbour_weight * neighbour + kl_weight * kl
    return VGAELoss(total, feature, id_loss, neighbour, kl)
