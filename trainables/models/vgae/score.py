"""Per-graph reconstruction errors and the VGAE anomaly score, vectorised over a batch."""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from trainables.models.features import graph_index
from trainables.models.inference import evaluating
from trainables.models.vgae.loss import ReconstructionTargets, reconstruction_targets
from trainables.models.vgae.model import VGAE, VGAEOutput

__all__ = [
    "GraphErrors",
    "anomaly_score",
    "graph_anomaly_scores",
    "graph_reconstruction_errors",
    "output_anomaly_scores",
]


class GraphErrors(NamedTuple):
    """Reconstruction errors of each graph, each `[num_graphs]`, means over the graph's nodes.

    Attributes:
        feature: Squared error of the continuous features (mean over the 10 columns).
        id: Cross-entropy of the CAN-ID classification.
        neighbour: Binary cross-entropy of the neighbour-ID set (mean over the vocabulary).
    """

    feature: Tensor
    id: Tensor
    neighbour: Tensor


def graph_reconstruction_errors(
    output: VGAEOutput, targets: ReconstructionTargets, batch: Tensor, *, num_graphs: int
) -> GraphErrors:
    """Per-graph means of the per-node reconstruction errors, one scatter each.

    Args:
        output: The VGAE's output for a batch.
        targets: `reconstruction_targets` of the same batch.
        batch: Graph index of each node, int64 `[N]`.
        num_graphs: Number of graphs in the batch.

    Returns:
        The three error components per graph.
    """
    node_feature = (output.features - targets.features).pow(2).mean(dim=1)
    node_id = F.cross_entropy(output.id_logits, targets.ids, reduction="none")
    node_neighbour = F.binary_cross_entropy_with_logits(
        output.neighbour_logits, targets.neighbours, reduction="none"
    ).mean(dim=1)
    return GraphErrors(
        *(
            scatter(e, batch, dim=0, dim_size=num_graphs, reduce="mean")
            for e in (node_feature, node_id, node_neighbour)
        )
    )


def anomaly_score(
    errors: GraphErrors, *, id_weight: float = 0.1, neighbour_weight: float = 0.05
) -> Tensor:
    """A graph's anomaly score: its reconstruction error, weighted as in `vgae_loss`.

    The score is unbounded (>= 0); fusion normalises it to [0, 1] with a `ScoreScale`.

    Args:
        errors: `graph_reconstruction_errors` of a batch.
        id_weight: Weight of the CAN-ID error. Default 0.1.
        neighbour_weight: Weight of the neighbour-set error. Default 0.05.

    Returns:
        float `[num_graphs]`.
    """
    return errors.feature + id_weight * errors.id + neighbour_weight * errors.neighbour


def graph_anomaly_scores(model: VGAE, data: Data) -> Tensor:
    """Anomaly score of every graph of `data`, in eval mode and without gradients.

    Args:
        model: A VGAE trained on normal graphs.
        data: A `Data` or a `Batch`.

    Returns:
        float `[num_graphs]`; higher means less like the training traffic.
    """
    with evaluating(model):
        targets = reconstruction_targets(
            data.x, data.edge_index, vocab_size=model.config.vocab_size
        )
        return output_anomaly_scores(model(data), targets, data)


def output_anomaly_scores(
    output: VGAEOutput, targets: ReconstructionTargets, data: Data
) -> Tensor:
    """`graph_anomaly_scores` from an output already computed in eval mode (`z = mu`), e.g. the
    one a validation step computes its loss from."""
    batch, num_graphs = graph_index(data)
    errors = graph_reconstruction_errors(output, targets, batch, num_graphs=num_graphs)
    return anomaly_score(errors)
