from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from trainables.data.source import GraphSource
from trainables.errors import UserError
from trainables.models import VGAE, VGAEConfig, graph_anomaly_scores
from trainables.modes.curriculum import (
    CurriculumDataModule,
    score_graphs,
)


def test_score_graphs_scores_every_graph_in_order_without_changing_mode(
    source: GraphSource,
) -> None:
    dm = CurriculumDataModule(source, num_epochs=2)
    dm.setup()
    assert dm.train_set is not None and dm.vocab is not None
    torch.manual_seed(0)
    vgae = VGAE(VGAEConfig.preset("student", vocab_size=len(dm.vocab))).train()
    subset = dm.train_set[np.arange(23)]
    scores = score_graphs(vgae, subset, batch_size=8)
    assert vgae.training
    assert scores.shape == (23,) and scores.dtype == np.float64
    one_batch = graph_anomaly_scores(vgae, Batch.from_data_list(list(subset)))
    np.testing.assert_allclose(scores, one_batch.double().numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(UserError, match=r"scoring batch size must be >= 1, got batch_size=0"):
        score_graphs(vgae, subset, batch_size=0)


# --- CurriculumDataModule ---------------------------------------------------------------
