"""`CANGraphDataset` and `GraphLoader` against PyG's own collation, on synthetic CAN graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from trainables.data import GraphLoader, GraphSource, load_split
from trainables.data.dataset import CANGraphDataset


@pytest.fixture(scope="module")
def dataset() -> CANGraphDataset:
    source = GraphSource(num_messages=20_000, use_cache=False)
    return CANGraphDataset(load_split(source, "train").graphs)


def _pyg_batch(dataset: CANGraphDataset, index: np.ndarray) -> Batch:
    """What PyG's `Collater` makes of the graphs one `Data` at a time."""
    return Batch.from_data_list([dataset.get(int(i)) for i in index])


def _assert_same(ours: Batch, theirs: Batch) -> None:
    assert ours.num_graphs == theirs.num_graphs
    for key in ("x", "edge_index", "edge_attr", "y", "batch", "ptr"):
        assert ours[key].dtype == theirs[key].dtype, key
        assert torch.equal(ours[key], theirs[key]), key


def test_collate_is_pygs_batch_of_the_same_graphs(dataset: CANGraphDataset) -> None:
    index = np.random.default_rng(0).permutation(len(dataset))[:37]
    _assert_same(dataset.collate(index), _pyg_batch(dataset, index))


def test_collate_of_a_subset_maps_its_positions_to_the_storage(dataset: CANGraphDataset) -> None:
    rows = np.random.default_rng(1).permutation(len(dataset))[:50]
    subset = dataset[rows]
    positions = np.array([3, 0, 49, 3])  # repeats are served again, as a cycled probe's
    _assert_same(subset.collate(positions), _pyg_batch(dataset, rows[positions]))


def test_graph_loader_serves_every_graph_in_the_samplers_order(dataset: CANGraphDataset) -> None:
    order = np.random.default_rng(2).permutation(len(dataset))
    batches = list(GraphLoader(dataset, batch_size=16, sampler=order.tolist()))
    assert [b.num_graphs for b in batches] == [16] * (len(order) // 16) + (
        [len(order) % 16] if len(order) % 16 else []
    )
    _assert_same(batches[1], _pyg_batch(dataset, order[16:32]))
    assert torch.equal(
        torch.cat([b.y for b in batches]), torch.from_numpy(dataset.graphs.y[order])
    )


def test_graph_loader_refuses_what_it_cannot_batch() -> None:
    with pytest.raises(TypeError, match="GraphLoader batches a CANGraphDataset, got list"):
        GraphLoader([1, 2, 3], batch_size=2)  # type: ignore[arg-type]
