"""VGAE: the autoencoder, its targets and loss, and per-graph anomaly scores."""

from trainables.models.vgae.loss import (
    ReconstructionTargets,
    VGAELoss,
    neighbour_targets,
    reconstruction_targets,
    vgae_loss,
)
from trainables.models.vgae.model import VGAE, VGAEConfig, VGAEOutput
from trainables.models.vgae.score import (
    GraphErrors,
    anomaly_score,
    graph_anomaly_scores,
    graph_reconstruction_errors,
    output_anomaly_scores,
)

__all__ = [
    "VGAE",
    "GraphErrors",
    "ReconstructionTargets",
    "VGAEConfig",
    "VGAELoss",
    "VGAEOutput",
    "anomaly_score",
    "graph_anomaly_scores",
    "graph_reconstruction_errors",
    "neighbour_targets",
    "output_anomaly_scores",
    "reconstruction_targets",
    "vgae_loss",
]
