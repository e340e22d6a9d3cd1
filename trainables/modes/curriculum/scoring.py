"""How hard each graph is: its VGAE anomaly score, computed in small batches."""

from __future__ import annotations

import numpy as np
import torch

from trainables.data.dataset import CANGraphDataset, GraphLoader
from trainables.errors import UserError
from trainables.models.vgae import VGAE, graph_anomaly_scores

__all__ = ["SCORING_BATCH_SIZE", "score_graphs"]


SCORING_BATCH_SIZE = 64
"""Graphs `score_graphs` runs at once by default. A graph's score does not depend on how graphs are
batched, and the VGAE's dense neighbour logits grow with nodes x vocabulary: scoring runs before a
trial's memory budget starts, so its batch is kept small. hcrl_sa's 7,493 training graphs on CPU
(`benchmarks/bench_scoring.py`): 8192 a batch took 9.1 GiB and 18 s; 64, 0.8 GiB and 5 s."""


def score_graphs(
    vgae: VGAE, dataset: CANGraphDataset, *, batch_size: int = SCORING_BATCH_SIZE
) -> np.ndarray:
    """VGAE anomaly score of every graph of `dataset`, in order, on the model's device.

    Runs in eval mode without gradients (`graph_anomaly_scores`) and leaves the model's mode
    as it was.

    Args:
        vgae: A VGAE trained on normal graphs.
        dataset: The graphs to score, e.g. a datamodule's `train_set`.
        batch_size: Graphs per forward pass, >= 1 (default `SCORING_BATCH_SIZE`; not a trial's
            batch size, which may be thousands).

    Returns:
        float64 `[len(dataset)]`; higher means harder (less like normal traffic).

    Raises:
        UserError: `batch_size` is below 1.
    """
    if batch_size < 1:
        raise UserError(f"scoring batch size must be >= 1, got {batch_size=}")
    device = next(vgae.parameters()).device
    scores = [
        graph_anomaly_scores(vgae, batch.to(device)).cpu().double()
        for batch in GraphLoader(dataset, batch_size=batch_size, shuffle=False)
    ]
    if not scores:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(scores).numpy()
