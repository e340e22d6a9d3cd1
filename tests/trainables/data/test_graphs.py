from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trainables.data.helpers import reference_graphs
from trainables.data.capture import Capture
from trainables.data.graphs import GraphArrays, build_graphs
from trainables.data.vocab import Vocabulary
from trainables.errors import UserError


def random_capture(
    num: int, *, seed: int, num_ids: int = 8, max_id: int = 0x7FF, attack_rate: float = 0.05
) -> Capture:
    rng = np.random.default_rng(seed)
    ids = rng.choice(rng.integers(0, max_id + 1, num_ids), num)
    return Capture.from_arrays(
        f"random-{seed}",
        timestamp=np.cumsum(rng.exponential(0.001, num)),
        can_id=ids,
        payload=rng.integers(0, 256, (num, 8)),
        attack=rng.random(num) < attack_rate,
    )


def assert_matches_reference(
    graphs: GraphArrays, capture: Capture, vocab_ids: list[int], window: int, stride: int
) -> None:
    expected = reference_graphs(capture, vocab_ids, window, stride)
    assert graphs.num_graphs == len(expected)
    for g, ref in enumerate(expected):
        nodes = slice(graphs.node_ptr[g], graphs.node_ptr[g + 1])
        edges = slice(graphs.edge_ptr[g], graphs.edge_ptr[g + 1])
        np.testing.assert_allclose(graphs.x[nodes], ref["x"], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(graphs.edge_index[:, edges], ref["edge_index"])
        np.testing.assert_allclose(graphs.edge_attr[edges], ref["edge_attr"], rtol=1e-4, atol=1e-4)
        assert graphs.y[g] == ref["y"]


@pytest.mark.parametrize(("window", "stride"), [(100, 100), (10, 3), (7, 20), (300, 150)])
def test_build_graphs_matches_reference(window: int, stride: int) -> None:
    capture = random_capture(1000, seed=window)
    vocab_ids = [int(v) for v in np.unique(capture.can_id)[::2]]  # half the IDs unseen
    graphs = build_graphs([capture], Vocabulary.from_ids(vocab_ids), window=window, stride=stride)
    assert_matches_reference(graphs, capture, vocab_ids, window, stride)


def test_build_graphs_extended_ids_match_reference() -> None:
    capture = random_capture(400, seed=5, max_id=0x1FFFFFFF)
    vocab_ids = [int(v) for v in np.unique(capture.can_id)]
    graphs = build_graphs([capture], Vocabulary.from_ids(vocab_ids), window=50)
    assert_matches_reference(graphs, capture, vocab_ids, 50, 50)


@settings(max_examples=40, deadline=None)
@given(
    num=st.integers(0, 400),
    window=st.integers(2, 60),
    stride=st.integers(1, 70),
    num_ids=st.integers(1, 70),
    seed=st.integers(0, 2**16),
)
def test_build_graphs_invariants(
    num: int, window: int, stride: int, num_ids: int, seed: int
) -> None:
    capture = random_capture(num, seed=seed, num_ids=num_ids, attack_rate=0.02)
    graphs = build_graphs(
        [capture], Vocabulary.from_captures([capture]), window=window, stride=stride
    )
    expected_graphs = (num - window) // stride + 1 if num >= window else 0
    assert graphs.num_graphs == expected_graphs
    nodes = graphs.num_nodes_per_graph
    assert ((nodes >= 1) & (nodes <= window)).all()
    for g in range(graphs.num_graphs):
        edges = slice(graphs.edge_ptr[g], graphs.edge_ptr[g + 1])
        # every transition is counted once, every node index is local
        assert graphs.edge_attr[edges, 0].sum() == window - 1
        assert (graphs.edge_index[:, edges] < nodes[g]).all()
        rows = slice(g * stride, g * stride + window)
        assert graphs.y[g] == int(capture.attack[rows].any())
        np.testing.assert_allclose(
            graphs.x[graphs.node_ptr[g] : graphs.node_ptr[g + 1], 9].sum(), 1.0, rtol=1e-5
        )


def test_build_graphs_windows_do_not_span_captures() -> None:
    a, b = random_capture(250, seed=1), random_capture(130, seed=2)
    vocab = Vocabulary.from_captures([a, b])
    both = build_graphs([a, b], vocab, window=100)
    assert both.num_graphs == 2 + 1
    one_by_one = GraphArrays.concat([build_graphs([a], vocab), build_graphs([b], vocab)])
    for field in ("x", "edge_index", "edge_attr", "y", "node_ptr", "edge_ptr"):
        np.testing.assert_array_equal(getattr(both, field), getattr(one_by_one, field))


def test_graph_arrays_select_picks_graphs_in_order() -> None:
    capture = random_capture(1000, seed=9)
    graphs = build_graphs([capture], Vocabulary.from_captures([capture]), window=100)
    picked = graphs.select(np.array([7, 2]))
    assert picked.num_graphs == 2
    for new, old in enumerate([7, 2]):
        np.testing.assert_array_equal(
            picked.x[picked.node_ptr[new] : picked.node_ptr[new + 1]],
            graphs.x[graphs.node_ptr[old] : graphs.node_ptr[old + 1]],
        )
        np.testing.assert_array_equal(
            picked.edge_index[:, picked.edge_ptr[new] : picked.edge_ptr[new + 1]],
            graphs.edge_index[:, graphs.edge_ptr[old] : graphs.edge_ptr[old + 1]],
        )


@pytest.mark.parametrize(
    ("window", "stride", "message"),
    [
        (1, None, "--window must be an integer >= 2, got 1"),
        (100, 0, "--stride must be an integer >= 1, got 0"),
    ],
)
def test_build_graphs_rejects_bad_window(window: int, stride: int | None, message: str) -> None:
    with pytest.raises(UserError, match=message):
        build_graphs([], Vocabulary.from_ids([]), window=window, stride=stride)
