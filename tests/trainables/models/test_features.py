from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from tests.trainables.models._graphs import make_graph, small_batch
from trainables.errors import UserError
from trainables.models.features import (
    check_graph,
    check_model_size,
    check_vocab_size,
    graph_index,
    split_node_features,
)


def test_check_model_size_accepts_presets() -> None:
    assert check_model_size("teacher") == "teacher"
    assert check_model_size("student") == "student"


def test_check_model_size_rejects_unknown_name() -> None:
    with pytest.raises(UserError, match=r"unknown model size 'large': choose one of teacher"):
        check_model_size("large")


@pytest.mark.parametrize("vocab_size", [0, -3, 2.5, True])
def test_check_vocab_size_rejects_non_positive_int(vocab_size: int) -> None:
    with pytest.raises(UserError, match="vocab_size must be a positive int"):
        check_vocab_size(vocab_size)


def test_split_node_features_maps_out_of_range_ids_to_unknown() -> None:
    x = torch.zeros(5, 11)
    x[:, 0] = torch.tensor([3.0, 99.0, -1.0, float("nan"), 4.0])
    x[:, 1:] = 0.5
    ids, continuous = split_node_features(x, vocab_size=4)
    assert ids.tolist() == [3, 0, 0, 0, 4]
    assert ids.dtype == torch.long
    assert continuous.shape == (5, 10)
    assert torch.all(continuous == 0.5)


def test_check_graph_rejects_wrong_node_width() -> None:
    g = make_graph(3)
    g.x = g.x[:, :10]
    with pytest.raises(ValueError, match=r"x must be \[num_nodes, 11\], got shape \(3, 10\)"):
        check_graph(g)


def test_check_graph_rejects_missing_edge_attr() -> None:
    g = make_graph(3)
    g.edge_attr = None
    with pytest.raises(ValueError, match=r"edge_attr must be \[num_edges=3, 6\], got shape None"):
        check_graph(g)


def test_graph_index_of_data_is_one_graph() -> None:
    batch, num_graphs = graph_index(make_graph(4))
    assert num_graphs == 1
    assert batch.tolist() == [0, 0, 0, 0]


def test_graph_index_of_batch_follows_loader() -> None:
    data = small_batch()
    batch, num_graphs = graph_index(data)
    assert num_graphs == 3
    assert batch.tolist() == [0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]


def test_graph_index_of_empty_data_has_no_nodes() -> None:
    g = Data(x=torch.zeros(0, 11), edge_index=torch.zeros(2, 0, dtype=torch.long))
    batch, num_graphs = graph_index(g)
    assert (batch.numel(), num_graphs) == (0, 1)
