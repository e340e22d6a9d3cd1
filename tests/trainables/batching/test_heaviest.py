"""The heaviest batches the tuner probes are the heaviest the run's real loaders serve."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.batching.heaviest import HeaviestWindows, LargestFirst, largest_first
from trainables.data import CANGraphDataModule, GraphSource
from trainables.data.datamodule import EpochOrder


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> CANGraphDataModule:
    dm = CANGraphDataModule(
        GraphSource(num_messages=30_000, cache_dir=tmp_path_factory.mktemp("c")), seed=3
    )
    dm.setup()
    return dm


def _loader_batches(dm: CANGraphDataModule, epoch: int, size: int) -> list[np.ndarray]:
    """The train_set indices of every batch the real loader serves in `epoch` at `size`."""
    dm.batch_size = size
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochOrder)
    assert loader.batch_sampler is not None
    loader.sampler.set_epoch(epoch)  # what Lightning does at the start of every epoch
    return [np.asarray(b) for b in loader.batch_sampler]


def test_loader_serves_the_epoch_order_in_consecutive_batches(data: CANGraphDataModule) -> None:
    first, second = data.train_order(0), data.train_order(1)
    assert sorted(first) == list(range(len(data.train_set or [])))
    assert not np.array_equal(first, second)  # a new shuffle every epoch...
    assert np.array_equal(first, data.train_order(0))  # ...known before training
    batches = _loader_batches(data, 1, 32)
    assert np.array_equal(np.concatenate(batches), second)
    assert [len(b) for b in batches[:-1]] == [32] * (len(batches) - 1)


@pytest.mark.parametrize("size", [1, 7, 32, 150])
def test_no_real_batch_of_any_epoch_at_or_below_a_size_outweighs_its_window(
    data: CANGraphDataModule, size: int
) -> None:
    assert data.train_set is not None
    weights = data.train_set.graph_sizes
    windows = HeaviestWindows(data.train_set, data.train_orders(3))
    bound = weights[windows.window(size)].sum()
    heaviest_real = max(
        weights[batch].sum()
        for epoch in range(3)
        for smaller in (size, max(1, size // 2), max(1, size - 3))
        for batch in _loader_batches(data, epoch, smaller)
    )
    assert heaviest_real <= bound
    # The bound is a real batch's window, far lighter than the `size` largest graphs together.
    largest = np.sort(weights)[::-1][:size].sum()
    assert bound <= largest
    if size >= 32:
        assert bound < largest


def test_windows_cycle_past_the_longest_epoch_and_fingerprint_the_orders(
    data: CANGraphDataModule,
) -> None:
    assert data.train_set is not None
    orders = data.train_orders(2)
    windows = HeaviestWindows(data.train_set, orders)
    n = len(windows)
    assert n == len(data.train_set)
    assert len(windows.batch(n + 5)) == n + 5
    assert (
        windows.fingerprint()
        == HeaviestWindows(data.train_set, data.train_orders(2)).fingerprint()
    )
    assert windows.fingerprint() != HeaviestWindows(data.train_set, orders[::-1]).fingerprint()
    with pytest.raises(ValueError, match="hold no graphs"):
        HeaviestWindows(data.train_set, [np.zeros(0, np.int64)])


def test_largest_first_serves_the_first_graphs_cycled(data: CANGraphDataModule) -> None:
    assert data.val_set is not None
    probe = LargestFirst(data.val_set)
    assert len(probe.batch(3)) == 3
    assert len(probe.batch(len(probe) + 2)) == len(probe) + 2
    with pytest.raises(ValueError, match="at least one graph"):
        LargestFirst(data.val_set[:0])


def test_weight_is_the_served_batchs_nodes_and_edges_without_building_it(
    data: CANGraphDataModule,
) -> None:
    assert data.train_set is not None and data.val_set is not None
    windows = HeaviestWindows(data.train_set, data.train_orders(3))
    largest = LargestFirst(data.val_set)
    for probe in (windows, largest):
        for size in (1, 7, len(probe) - 1, len(probe), 2 * len(probe) + 3):  # cycled past it
            assert probe.weight(size) == int(probe.batch(size).graph_sizes.sum())


def test_largest_first_orders_by_nodes_plus_edges(data: CANGraphDataModule) -> None:
    assert data.train_set is not None
    probe = largest_first(data.train_set.graphs, limit=50)
    sizes = probe.graph_sizes
    assert len(probe) == 50 and (np.diff(sizes) <= 0).all()
    all_sizes = (
        data.train_set.graphs.num_nodes_per_graph + data.train_set.graphs.num_edges_per_graph
    )
    assert sizes[0] == all_sizes.max()
