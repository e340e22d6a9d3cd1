from __future__ import annotations

import torch

from tests.trainables.models._graphs import VOCAB_SIZE, collate, make_graph, small_batch
from trainables.models.vgae.loss import reconstruction_targets, vgae_loss
from trainables.models.vgae.model import VGAE, VGAEConfig
from trainables.models.vgae.score import (
    anomaly_score,
    graph_anomaly_scores,
    graph_reconstruction_errors,
)


def test_graph_reconstruction_errors_have_one_value_per_graph() -> None:
    model = VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE)).eval()
    batch = small_batch()
    targets = reconstruction_targets(batch.x, batch.edge_index, vocab_size=VOCAB_SIZE)
    errors = graph_reconstruction_errors(model(batch), targets, batch.batch, num_graphs=3)
    assert [tuple(e.shape) for e in errors] == [(3,), (3,), (3,)]
    assert all((e >= 0).all() for e in errors)
    score = anomaly_score(errors)
    assert torch.allclose(score, errors.feature + 0.1 * errors.id + 0.05 * errors.neighbour)


def test_graph_anomaly_scores_of_batch_equal_scores_of_each_graph() -> None:
    model = VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE))
    graphs = [make_graph(1, seed=1), make_graph(3, seed=2), make_graph(7, seed=3)]
    together = graph_anomaly_scores(model, collate(graphs))
    alone = torch.cat([graph_anomaly_scores(model, g) for g in graphs])
    assert torch.allclose(together, alone, atol=1e-5)
    assert model.training  # the caller's mode is restored


def test_graph_anomaly_scores_rank_unseen_traffic_above_training_traffic() -> None:
    torch.manual_seed(0)
    # Normal traffic: IDs 1-5, payload means near 0.2; the unseen graphs use IDs 7-10 near 0.9.
    sizes = [3 + i % 4 for i in range(16)]
    normal = collate(
        [
            make_graph(n, seed=i, ids=[1 + (i + k) % 5 for k in range(n)])
            for i, n in enumerate(sizes)
        ]
    )
    model = VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    targets = reconstruction_targets(normal.x, normal.edge_index, vocab_size=VOCAB_SIZE)
    before = graph_anomaly_scores(model, normal)
    losses = []
    for _ in range(25):
        optimiser.zero_grad()
        loss = vgae_loss(model(normal), targets).total
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    after = graph_anomaly_scores(model, normal)
    assert after.mean() < before.mean()

    unseen = collate([make_graph(4, seed=100 + i, ids=[7, 8, 9, 10], level=0.9) for i in range(4)])
    assert graph_anomaly_scores(model, unseen).min() > 2 * after.max()
