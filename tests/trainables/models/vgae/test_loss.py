from __future__ import annotations

import math

import pytest
import torch

from tests.trainables.models._graphs import VOCAB_SIZE, collate, make_graph, small_batch
from trainables.errors import UserError
from trainables.models.vgae.loss import neighbour_targets, reconstruction_targets, vgae_loss
from trainables.models.vgae.model import VGAE, VGAEConfig


def test_neighbour_targets_mark_predecessors_successors_and_self_loops() -> None:
    ids = torch.tensor([3, 1, 2])
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 2]])  # 0->1, 1->2, and a self-loop on 2
    targets = neighbour_targets(ids, edge_index, num_ids=4)
    assert targets.tolist() == [
        [0, 1, 0, 0],  # 0 sits next to node 1 (ID 1)
        [0, 0, 1, 1],  # 1 sits next to node 0 (ID 3) and node 2 (ID 2)
        [0, 1, 1, 0],  # 2 sits next to node 1 (ID 1) and itself (ID 2)
    ]


def test_neighbour_targets_of_batch_equal_targets_of_each_graph() -> None:
    graphs = [make_graph(1, seed=1), make_graph(3, seed=2), make_graph(7, seed=3)]
    batch = collate(graphs)
    together = reconstruction_targets(batch.x, batch.edge_index, vocab_size=VOCAB_SIZE)
    alone = [reconstruction_targets(g.x, g.edge_index, vocab_size=VOCAB_SIZE) for g in graphs]
    assert torch.equal(together.neighbours, torch.cat([t.neighbours for t in alone]))
    assert torch.equal(together.ids, torch.cat([t.ids for t in alone]))


def test_reconstruction_targets_map_out_of_range_ids_to_unknown() -> None:
    g = make_graph(2, ids=[VOCAB_SIZE + 7, 1])
    targets = reconstruction_targets(g.x, g.edge_index, vocab_size=VOCAB_SIZE)
    assert targets.ids.tolist() == [0, 1]
    assert targets.neighbours.shape == (2, VOCAB_SIZE + 1)


def test_vgae_loss_components_are_finite_and_weighted() -> None:
    torch.manual_seed(0)
    batch = small_batch()
    out = VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE))(batch)
    targets = reconstruction_targets(batch.x, batch.edge_index, vocab_size=VOCAB_SIZE)
    loss = vgae_loss(out, targets)
    assert all(math.isfinite(t.item()) for t in loss)
    expected = loss.feature + 0.1 * loss.id + 0.05 * loss.neighbour + 0.01 * loss.kl
    assert torch.allclose(loss.total, expected)
    assert loss.total.requires_grad


def test_vgae_loss_rejects_negative_weight() -> None:
    batch = small_batch()
    out = VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE))(batch)
    targets = reconstruction_targets(batch.x, batch.edge_index, vocab_size=VOCAB_SIZE)
    with pytest.raises(UserError, match=r"VGAE loss kl_weight must be >= 0, got -1\.0"):
        vgae_loss(out, targets, kl_weight=-1.0)
