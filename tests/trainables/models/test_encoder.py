from __future__ import annotations

import pytest
import torch

from tests.trainables.models._graphs import VOCAB_SIZE, make_graph, small_batch
from trainables.errors import UserError
from trainables.models.encoder import GraphAttentionEncoder


def _encoder() -> GraphAttentionEncoder:
    torch.manual_seed(0)
    return GraphAttentionEncoder(
        vocab_size=VOCAB_SIZE,
        id_embedding_dim=4,
        layer_channels=(8, 6),
        num_heads=2,
        dropout=0.0,
    ).eval()


def test_graph_attention_encoder_returns_each_layer() -> None:
    outputs = _encoder()(small_batch())
    assert [tuple(h.shape) for h in outputs] == [(11, 8), (11, 6)]
    assert all(torch.isfinite(h).all() for h in outputs)


def test_graph_attention_encoder_rejects_width_not_multiple_of_heads() -> None:
    with pytest.raises(UserError, match="positive multiple of num_heads=4"):
        GraphAttentionEncoder(
            vocab_size=3, id_embedding_dim=2, layer_channels=(8, 6), num_heads=4, dropout=0.0
        )


def test_graph_attention_encoder_rejects_no_layers() -> None:
    with pytest.raises(UserError, match="at least one layer"):
        GraphAttentionEncoder(
            vocab_size=3, id_embedding_dim=2, layer_channels=(), num_heads=1, dropout=0.0
        )


def test_graph_attention_encoder_keeps_existing_self_loop_attributes() -> None:
    encoder = _encoder()
    g = make_graph(3)
    # Node 0 gets a second incoming edge, so its self-loop's attention weight is not forced to 1.
    g.edge_index = torch.cat([g.edge_index, torch.tensor([[2], [0]])], dim=1)
    g.edge_attr = torch.cat([g.edge_attr, torch.rand(1, 6)])
    h = encoder(g)[-1]
    g.edge_attr[2] += 5.0  # edge 2 is node 0's self-loop
    assert not torch.allclose(encoder(g)[-1][0], h[0])
