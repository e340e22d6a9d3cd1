from __future__ import annotations

import numpy as np

from trainables.data.datamodule import CANGraphDataModule
from trainables.data.dataset import CANGraphDataset
from trainables.data.source import GraphSource
from trainables.training.frontier import eval_probe_set


def _sizes(dataset: CANGraphDataset) -> np.ndarray:
    graphs = dataset.graphs.select(dataset.indices())
    return np.asarray(graphs.num_nodes_per_graph + graphs.num_edges_per_graph)


def test_eval_probe_is_the_largest_graphs_as_many_as_the_largest_eval_set(
    smoke_source: GraphSource,
) -> None:
    datamodule = CANGraphDataModule(smoke_source)
    datamodule.setup()
    assert datamodule.val_set is not None
    sets = [datamodule.val_set, *datamodule.test_sets.values()]
    assert len(sets) >= 2 and len({len(s) for s in sets}) > 1
    every = np.concatenate([_sizes(s) for s in sets])
    probe = eval_probe_set(datamodule)
    # No evaluation batch holds more graphs than the largest set it evaluates.
    assert len(probe) == max(len(s) for s in sets) < len(every)
    sizes = _sizes(probe)
    assert (np.diff(sizes) <= 0).all()  # largest first
    # ... and they are the largest graphs of all the sets together.
    np.testing.assert_array_equal(sizes, np.sort(every)[::-1][: len(probe)])
