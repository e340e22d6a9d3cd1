"""Small real capture files and a naive reference graph builder for the data tests."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainables.data.capture import Capture

HEADER = "timestamp,arbitration_id,data_field,attack"

SOURCE_CONTRADICTIONS: list[tuple[list[str], str]] = [
    (["--no-cache", "--cache-dir", "c"], "--no-cache and --cache-dir c contradict each other"),
    (
        ["--data-dir", "captures", "--num-messages", "30000"],
        "--num-messages shapes synthetic traffic, but --data-dir captures reads real captures",
    ),
    (
        ["--data-dir", "captures", "--data-seed", "0"],
        "--data-seed shapes synthetic traffic, but --data-dir captures reads real captures",
    ),
]
"""Data options every entry point refuses together, and its message: one of each pair was
silently dropped. Checked before the data is looked at (`captures` need not be there)."""


def ctt_rows(num: int, *, seed: int = 0, num_ids: int = 6, attack_every: int = 0) -> list[str]:
    """`num` well-formed can-train-and-test rows with varying payload lengths."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(num):
        can_id = int(rng.integers(0, num_ids)) * 0x11 + 0x80
        payload = bytes(rng.integers(0, 256, int(rng.choice([0, 2, 8, 8, 8]))).tolist())
        attack = int(attack_every > 0 and i % attack_every == 0)
        rows.append(f"{1500000000 + i * 0.001:.6f},{can_id:03X},{payload.hex().upper()},{attack}")
    return rows


def write_csv(path: Path, rows: Sequence[str], *, header: str | None = HEADER) -> Path:
    text = "\n".join(([header] if header else []) + list(rows)) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def reference_graphs(
    capture: Capture, vocab_ids: Sequence[int], window: int, stride: int
) -> list[dict[str, np.ndarray]]:
    """The graph definition written as plain loops: slow, obviously right."""
    index = {int(v): i + 1 for i, v in enumerate(sorted(set(vocab_ids)))}
    graphs: list[dict[str, np.ndarray]] = []
    for start in range(0, len(capture) - window + 1, stride):
        rows = range(start, start + window)
        ids = [int(capture.can_id[r]) for r in rows]
        nodes = sorted(set(ids))
        local = {can_id: i for i, can_id in enumerate(nodes)}
        x = np.zeros((len(nodes), 11), np.float32)
        for n, can_id in enumerate(nodes):
            positions = [p for p, i in enumerate(ids) if i == can_id]
            x[n, 0] = index.get(can_id, 0)
            x[n, 1:9] = capture.payload[[start + p for p in positions]].mean(axis=0) / 255
            x[n, 9] = len(positions) / window
            x[n, 10] = max(positions) / (window - 1)
        edges: dict[tuple[int, int], list[tuple[int, float]]] = {}
        for p in range(window - 1):
            key = (local[ids[p]], local[ids[p + 1]])
            dt = (capture.timestamp[start + p + 1] - capture.timestamp[start + p]) * 1000
            edges.setdefault(key, []).append((p, dt))
        keys = sorted(edges)
        attr = np.array(
            [
                [
                    len(edges[k]),
                    len(edges[k]) / window,
                    np.mean([d for _, d in edges[k]]),
                    np.std([d for _, d in edges[k]]),
                    edges[k][0][0] / window,
                    edges[k][-1][0] / window,
                ]
                for k in keys
            ],
            dtype=np.float32,
        )
        graphs.append(
            {
                "x": x,
                "edge_index": np.array(keys, dtype=np.int64).T.reshape(2, -1),
                "edge_attr": attr.reshape(-1, 6),
                "y": np.array(int(capture.attack[start : start + window].any())),
            }
        )
    return graphs
