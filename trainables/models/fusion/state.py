"""`fusion_state`: what the fusion agent sees of each graph, from a trained VGAE and GAT."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from trainables.models.features import graph_index
from trainables.models.gat import GATClassifier
from trainables.models.inference import evaluating
from trainables.models.vgae import (
    VGAE,
    anomaly_score,
    graph_reconstruction_errors,
    reconstruction_targets,
)

__all__ = ["NUM_STATE_FEATURES", "STATE_FEATURES", "fusion_state", "state_scores"]

STATE_FEATURES: tuple[str, ...] = (
    "vgae_feature_error",
    "vgae_id_error",
    "vgae_neighbour_error",
    "vgae_latent_mean",
    "vgae_latent_std",
    "vgae_latent_max",
    "vgae_latent_min",
    "vgae_confidence",
    "gat_normal_probability",
    "gat_attack_probability",
    "gat_confidence",
    "gat_embedding_mean",
    "gat_embedding_std",
    "gat_embedding_max",
    "gat_embedding_min",
)
"""Column names of the fusion state, in order."""
NUM_STATE_FEATURES = len(STATE_FEATURES)


def _row_stats(values: Tensor, batch: Tensor, num_graphs: int) -> list[Tensor]:
    """Mean, population std, max and min over all entries of each graph's rows of `values`."""
    mean = scatter(values.mean(dim=1), batch, dim=0, dim_size=num_graphs, reduce="mean")
    squared = (values - mean[batch].unsqueeze(1)).pow(2).mean(dim=1)
    std = scatter(squared, batch, dim=0, dim_size=num_graphs, reduce="mean").sqrt()
    high = scatter(values.amax(dim=1), batch, dim=0, dim_size=num_graphs, reduce="max")
    low = scatter(values.amin(dim=1), batch, dim=0, dim_size=num_graphs, reduce="min")
    return [mean, std, high, low]


def fusion_state(vgae: VGAE, gat: GATClassifier, data: Data) -> Tensor:
    """The 15-value state of every graph, computed in one pass of each model (no gradients).

    Columns (`STATE_FEATURES`): from the VGAE, the feature, ID and neighbour reconstruction
    errors, the mean/std/max/min of the latent codes `z = mu` over the graph's nodes and
    dimensions, and the VGAE confidence `1 / (1 + anomaly_score)` (in (0, 1], 1 for a perfect
    reconstruction); from the GAT, the probabilities of normal and attack, the confidence
    `1 - entropy / ln 2` (in [0, 1]), and the mean/std/max/min of the pooled graph embedding.
    Errors and latent statistics are raw (unnormalised). Both models run in eval mode; their
    modes are restored afterwards.

    Args:
        vgae: A trained `VGAE`.
        gat: A trained two-class `GATClassifier`.
        data: A `Data` or a `Batch`, on the models' device.

    Returns:
        float `[num_graphs, 15]`.

    Raises:
        ValueError: The GAT does not have two classes.
    """
    if gat.config.num_classes != 2:
        raise ValueError(f"fusion needs a two-class GAT, got {gat.config.num_classes} classes")
    batch, num_graphs = graph_index(data)
    with evaluating(vgae, gat):
        output = vgae(data)
        targets = reconstruction_targets(
            data.x, data.edge_index, vocab_size=vgae.config.vocab_size
        )
        errors = graph_reconstruction_errors(output, targets, batch, num_graphs=num_graphs)
        latent = _row_stats(output.z, batch, num_graphs)
        vgae_confidence = 1.0 / (1.0 + anomaly_score(errors))

        embedding = gat.encode(data)
        probabilities = torch.softmax(gat.classify(embedding), dim=1)
        entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(dim=1)
        gat_confidence = (1.0 - entropy / math.log(2)).clamp(0.0, 1.0)
        graph_rows = torch.arange(num_graphs, device=embedding.device)
        pooled = _row_stats(embedding, graph_rows, num_graphs)
    columns = [
        *errors,
        *latent,
        vgae_confidence,
        probabilities[:, 0],
        probabilities[:, 1],
        gat_confidence,
        *pooled,
    ]
    return torch.stack(columns, dim=1)


def state_scores(
    state: Tensor, *, id_weight: float = 0.1, neighbour_weight: float = 0.05
) -> tuple[Tensor, Tensor]:
    """The raw VGAE anomaly score and the GAT attack probability, read back from states.

    Args:
        state: `fusion_state` output, `[G, 15]`.
        id_weight: Weight of the ID error, as in `anomaly_score`. Default 0.1.
        neighbour_weight: Weight of the neighbour error, as in `anomaly_score`. Default 0.05.

    Returns:
        `(vgae_score, gat_attack_probability)`, each `[G]`; normalise the first with a
        `ScoreScale` before `fuse_scores`.

    Example:
        >>> s = torch.zeros(1, NUM_STATE_FEATURES)
        >>> s[0, 0], s[0, 1], s[0, 9] = 0.5, 1.0, 0.8
        >>> [round(float(t), 3) for t in state_scores(s)]
        [0.6, 0.8]
    """
    raw = state[:, 0] + id_weight * state[:, 1] + neighbour_weight * state[:, 2]
    return raw, state[:, STATE_FEATURES.index("gat_attack_probability")]
