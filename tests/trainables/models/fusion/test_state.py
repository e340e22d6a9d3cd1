from __future__ import annotations

import math

import pytest
import torch

from tests.trainables.models._graphs import VOCAB_SIZE, collate, make_graph, small_batch
from trainables.models.fusion.state import (
    NUM_STATE_FEATURES,
    STATE_FEATURES,
    fusion_state,
    state_scores,
)
from trainables.models.gat import GATClassifier, GATConfig
from trainables.models.vgae import VGAE, VGAEConfig, graph_anomaly_scores


def _models() -> tuple[VGAE, GATClassifier]:
    torch.manual_seed(0)
    vgae = VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE))
    gat = GATClassifier(GATConfig.preset("student", vocab_size=VOCAB_SIZE))
    return vgae, gat


def test_fusion_state_has_15_columns_per_graph() -> None:
    vgae, gat = _models()
    state = fusion_state(vgae, gat, small_batch())
    assert NUM_STATE_FEATURES == 15
    assert state.shape == (3, 15)
    assert torch.isfinite(state).all()
    assert not state.requires_grad


def test_fusion_state_confidences_and_probabilities_are_in_range() -> None:
    vgae, gat = _models()
    state = fusion_state(vgae, gat, small_batch())
    column = {name: state[:, i] for i, name in enumerate(STATE_FEATURES)}
    for name in ("vgae_confidence", "gat_confidence"):
        assert ((column[name] >= 0) & (column[name] <= 1)).all()
    total = column["gat_normal_probability"] + column["gat_attack_probability"]
    assert torch.allclose(total, torch.ones(3))
    p = column["gat_attack_probability"]
    entropy = -(p * p.log() + (1 - p) * (1 - p).log())
    assert torch.allclose(column["gat_confidence"], 1 - entropy / math.log(2), atol=1e-5)
    assert (column["vgae_latent_min"] <= column["vgae_latent_mean"]).all()
    assert (column["vgae_latent_mean"] <= column["vgae_latent_max"]).all()
    assert (column["vgae_latent_std"] >= 0).all()


def test_fusion_state_of_batch_equals_state_of_each_graph() -> None:
    vgae, gat = _models()
    graphs = [make_graph(1, seed=1), make_graph(3, seed=2), make_graph(7, seed=3)]
    alone = torch.cat([fusion_state(vgae, gat, g) for g in graphs])
    assert torch.allclose(fusion_state(vgae, gat, collate(graphs)), alone, atol=1e-5)


def test_fusion_state_restores_training_mode() -> None:
    vgae, gat = _models()
    fusion_state(vgae.train(), gat.train(), small_batch())
    assert vgae.training
    assert gat.training


def test_fusion_state_rejects_gat_with_more_classes() -> None:
    vgae, _ = _models()
    gat = GATClassifier(GATConfig(vocab_size=VOCAB_SIZE, num_layers=1, num_classes=3))
    with pytest.raises(ValueError, match="two-class GAT, got 3 classes"):
        fusion_state(vgae, gat, small_batch())


def test_state_scores_recover_vgae_score_and_gat_probability() -> None:
    vgae, gat = _models()
    batch = small_batch()
    state = fusion_state(vgae, gat, batch)
    vgae_score, gat_probability = state_scores(state)
    assert torch.allclose(vgae_score, graph_anomaly_scores(vgae, batch), atol=1e-6)
    with torch.no_grad():
        expected = torch.softmax(gat.eval()(batch), dim=1)[:, 1]
    assert torch.allclose(gat_probability, expected, atol=1e-6)
