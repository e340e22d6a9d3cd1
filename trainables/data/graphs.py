"""Windows of CAN messages to graphs, vectorised: no Python loop per message or per window.

A window of `window` consecutive messages (windows start every `stride` messages; a capture's
last incomplete window is dropped) becomes one directed graph:

- nodes: the distinct CAN IDs in the window, ordered by ID;
- edges: transitions between consecutive messages (a repeated ID gives a self-loop), one edge
  per distinct (source, target) pair, with its count;
- node features (11): vocabulary index of the ID (0 = out of vocabulary), mean of each of the 8
  payload bytes / 255 over the node's messages, occurrence count / window, last position in the
  window / (window - 1);
- edge features (6): count, count / window, mean and std of the inter-arrival time (ms), first
  and last position of the transition / window;
- label: 1 if any message in the window is an attack.

Grouping uses numpy's stable radix sort on 16-bit keys (two O(n) passes), so building is
bounded by memory bandwidth; captures are processed in chunks of windows to bound memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from trainables.data.capture import MAX_PAYLOAD_BYTES, Capture
from trainables.data.vocab import Vocabulary
from trainables.errors import require_int

__all__ = [
    "EDGE_FEATURES",
    "NODE_FEATURES",
    "NUM_EDGE_FEATURES",
    "NUM_NODE_FEATURES",
    "GraphArrays",
    "build_graphs",
    "validate_window",
]

NODE_FEATURES = (
    "id_index",
    *(f"byte_{i}_mean" for i in range(MAX_PAYLOAD_BYTES)),
    "count_fraction",
    "last_position",
)
EDGE_FEATURES = (
    "count",
    "count_fraction",
    "dt_mean_ms",
    "dt_std_ms",
    "first_position",
    "last_position",
)
NUM_NODE_FEATURES = len(NODE_FEATURES)
NUM_EDGE_FEATURES = len(EDGE_FEATURES)
_MAX_MESSAGES_PER_CHUNK = 1 << 21
_RADIX_LIMIT = 1 << 16


@dataclass(frozen=True, eq=False)
class GraphArrays:
    """Many graphs in collated form (the layout of a PyG `InMemoryDataset`).

    Graph `g` owns nodes `node_ptr[g]:node_ptr[g+1]` and edges `edge_ptr[g]:edge_ptr[g+1]`;
    `edge_index` holds node indices local to each graph.

    Args:
        x: float32 node features, `[num_nodes, 11]`.
        edge_index: int64 local (source, target) indices, `[2, num_edges]`.
        edge_attr: float32 edge features, `[num_edges, 6]`.
        y: int64 graph labels, `[num_graphs]`.
        node_ptr: int64 node offsets per graph, `[num_graphs + 1]`.
        edge_ptr: int64 edge offsets per graph, `[num_graphs + 1]`.

    Example:
        >>> from trainables.data import Capture, Vocabulary
        >>> c = Capture.from_arrays("demo", timestamp=[0, 1, 2, 3], can_id=[1, 2, 1, 1],
        ...                         payload=np.zeros((4, 8)), attack=[0, 0, 0, 1])
        >>> g = build_graphs([c], Vocabulary.from_ids([1, 2]), window=2)
        >>> g.num_graphs, g.y.tolist(), g.num_nodes_per_graph.tolist()
        (2, [0, 1], [2, 1])
    """

    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray
    y: np.ndarray
    node_ptr: np.ndarray
    edge_ptr: np.ndarray

    @property
    def num_graphs(self) -> int:
        return len(self.y)

    @property
    def num_nodes_per_graph(self) -> np.ndarray:
        return np.diff(self.node_ptr)

    @property
    def num_edges_per_graph(self) -> np.ndarray:
        return np.diff(self.edge_ptr)

    @classmethod
    def empty(cls) -> GraphArrays:
        return cls(
            x=np.zeros((0, NUM_NODE_FEATURES), np.float32),
            edge_index=np.zeros((2, 0), np.int64),
            edge_attr=np.zeros((0, NUM_EDGE_FEATURES), np.float32),
            y=np.zeros(0, np.int64),
            node_ptr=np.zeros(1, np.int64),
            edge_ptr=np.zeros(1, np.int64),
        )

    @classmethod
    def concat(cls, parts: Sequence[GraphArrays]) -> GraphArrays:
        """Concatenate graph sets in order."""
        parts = [p for p in parts if p.num_graphs] or [cls.empty()]
        if len(parts) == 1:
            return parts[0]
        return cls(
            x=np.concatenate([p.x for p in parts]),
            edge_index=np.concatenate([p.edge_index for p in parts], axis=1),
            edge_attr=np.concatenate([p.edge_attr for p in parts]),
            y=np.concatenate([p.y for p in parts]),
            node_ptr=_concat_ptr([p.node_ptr for p in parts]),
            edge_ptr=_concat_ptr([p.edge_ptr for p in parts]),
        )

    def select(self, index: np.ndarray) -> GraphArrays:
        """The graphs at `index` (in that order), as a new collated set."""
        index = np.asarray(index, dtype=np.int64)
        nodes = np.diff(self.node_ptr)[index]
        edges = np.diff(self.edge_ptr)[index]
        node_rows = _ranges(self.node_ptr[index], nodes)
        edge_rows = _ranges(self.edge_ptr[index], edges)
        return GraphArrays(
            x=self.x[node_rows],
            edge_index=self.edge_index[:, edge_rows],
            edge_attr=self.edge_attr[edge_rows],
            y=self.y[index],
            node_ptr=np.concatenate([[0], np.cumsum(nodes)]).astype(np.int64),
            edge_ptr=np.concatenate([[0], np.cumsum(edges)]).astype(np.int64),
        )


def validate_window(window: int, stride: int | None) -> int:
    """Check `window`/`stride` and return the stride in force (`window` when None)."""
    require_int("--window", window, minimum=2)
    return require_int("--stride", window if stride is None else stride, minimum=1)


def build_graphs(
    captures: Iterable[Capture],
    vocab: Vocabulary,
    *,
    window: int = 100,
    stride: int | None = None,
) -> GraphArrays:
    """Turn each capture's windows into graphs (windows never span two captures).

    Args:
        captures: Captures in the order their graphs should appear.
        vocab: Maps CAN IDs to embedding indices (built from the training split only).
        window: Messages per graph (default 100).
        stride: Messages between window starts (default: `window`, non-overlapping).

    Returns:
        All graphs, collated.
    """
    stride = validate_window(window, stride)
    parts: list[GraphArrays] = []
    for capture in captures:
        num_windows = (len(capture) - window) // stride + 1 if len(capture) >= window else 0
        per_chunk = max(1, min(_RADIX_LIMIT - 1, _MAX_MESSAGES_PER_CHUNK // window))
        for first in range(0, num_windows, per_chunk):
            count = min(per_chunk, num_windows - first)
            parts.append(_build_chunk(capture, vocab, first * stride, count, window, stride))
    return GraphArrays.concat(parts)


def _build_chunk(
    capture: Capture, vocab: Vocabulary, start: int, num_windows: int, window: int, stride: int
) -> GraphArrays:
    if stride == window:  # contiguous windows: reshape views, no gather
        stop = start + num_windows * window
        rows: slice | np.ndarray = slice(start, stop)
    else:
        starts = start + np.arange(num_windows, dtype=np.int64) * stride
        rows = (starts[:, None] + np.arange(window)).reshape(-1)
    can_id = capture.can_id[rows]
    timestamp = capture.timestamp[rows].reshape(num_windows, window)
    payload = capture.payload[rows]
    attack = capture.attack[rows].reshape(num_windows, window)

    graph_of_msg = np.repeat(np.arange(num_windows, dtype=np.int64), window)
    position = np.tile(np.arange(window, dtype=np.int64), num_windows)

    # Nodes: group messages by (window, CAN ID); stable, so positions stay in order per group.
    order = _group_order(graph_of_msg, _dense_codes(can_id))
    sorted_graph = graph_of_msg[order]
    sorted_id = can_id[order]
    node_start = np.flatnonzero(
        np.concatenate(
            [[True], (sorted_graph[1:] != sorted_graph[:-1]) | (sorted_id[1:] != sorted_id[:-1])]
        )
    )
    num_nodes = len(node_start)
    node_end = np.append(node_start[1:], len(order))
    node_count = node_end - node_start
    node_of_sorted = np.repeat(np.arange(num_nodes, dtype=np.int64), node_count)
    node_of_msg = np.empty_like(node_of_sorted)
    node_of_msg[order] = node_of_sorted
    node_graph = sorted_graph[node_start]
    node_ptr = _ptr(node_graph, num_windows)

    x = np.empty((num_nodes, NUM_NODE_FEATURES), dtype=np.float32)
    x[:, 0] = vocab.lookup(sorted_id[node_start])
    byte_sums = np.add.reduceat(payload[order].astype(np.float32), node_start, axis=0)
    x[:, 1 : 1 + MAX_PAYLOAD_BYTES] = byte_sums / (255.0 * node_count[:, None])
    x[:, 9] = node_count / window
    x[:, 10] = position[order][node_end - 1] / (window - 1)

    # Edges: transitions i -> i+1 inside each window, grouped by (window, source, target).
    node_grid = node_of_msg.reshape(num_windows, window)
    local_grid = node_grid - node_ptr[:-1, None]
    src = node_grid[:, :-1].reshape(-1)
    dst = node_grid[:, 1:].reshape(-1)
    local_key = (local_grid[:, :-1] * window + local_grid[:, 1:]).reshape(-1)
    edge_graph = np.repeat(np.arange(num_windows, dtype=np.int64), window - 1)
    edge_position = np.tile(np.arange(window - 1, dtype=np.int64), num_windows)
    dt_ms = (np.diff(timestamp, axis=1) * 1000.0).reshape(-1)

    order = _group_order(edge_graph, local_key)
    sorted_graph = edge_graph[order]
    sorted_key = local_key[order]
    edge_start = np.flatnonzero(
        np.concatenate(
            [[True], (sorted_graph[1:] != sorted_graph[:-1]) | (sorted_key[1:] != sorted_key[:-1])]
        )
    )
    edge_end = np.append(edge_start[1:], len(order))
    edge_count = (edge_end - edge_start).astype(np.float64)
    sorted_dt = dt_ms[order]
    dt_mean = np.add.reduceat(sorted_dt, edge_start) / edge_count
    dt_sq_mean = np.add.reduceat(sorted_dt * sorted_dt, edge_start) / edge_count
    dt_std = np.sqrt(np.maximum(dt_sq_mean - dt_mean * dt_mean, 0.0))
    sorted_position = edge_position[order]
    edge_attr = np.stack(
        [
            edge_count,
            edge_count / window,
            dt_mean,
            dt_std,
            sorted_position[edge_start] / window,
            sorted_position[edge_end - 1] / window,
        ],
        axis=1,
    ).astype(np.float32)
    first = order[edge_start]
    graph_of_edge = edge_graph[first]
    edge_index = np.stack([src[first], dst[first]]) - node_ptr[graph_of_edge]

    return GraphArrays(
        x=x,
        edge_index=edge_index.astype(np.int64),
        edge_attr=edge_attr,
        y=np.asarray(attack.any(axis=1), dtype=np.int64),
        node_ptr=node_ptr,
        edge_ptr=_ptr(graph_of_edge, num_windows),
    )


def _dense_codes(can_id: np.ndarray) -> np.ndarray:
    """Small non-negative codes that order like the IDs (raw IDs when they fit 16 bits)."""
    if len(can_id) == 0 or (can_id.min() >= 0 and can_id.max() < _RADIX_LIMIT):
        return can_id
    return np.unique(can_id, return_inverse=True)[1].reshape(-1)


def _group_order(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """Stable order by (major, minor): two radix passes when both fit 16 bits."""
    if len(minor) and minor.max() < _RADIX_LIMIT and major.max() < _RADIX_LIMIT:
        order = np.argsort(minor.astype(np.uint16), kind="stable")
        return order[np.argsort(major[order].astype(np.uint16), kind="stable")]
    return np.lexsort((minor, major))


def _ptr(group_of_item: np.ndarray, num_groups: int) -> np.ndarray:
    counts = np.bincount(group_of_item, minlength=num_groups)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _concat_ptr(ptrs: Sequence[np.ndarray]) -> np.ndarray:
    shifted = [ptrs[0]]
    offset = ptrs[0][-1]
    for ptr in ptrs[1:]:
        shifted.append(ptr[1:] + offset)
        offset += ptr[-1]
    return np.concatenate(shifted).astype(np.int64)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of `arange(s, s + n)` for each (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + offsets
