"""CAN captures to PyTorch Geometric graphs: reading, synthetic traffic, windows, cache.

Names are re-exported lazily (PEP 562), so `python -m trainables.data build` does not pay for
importing Lightning, which only the datamodule needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainables._lazy import lazy_exports

if TYPE_CHECKING:
    from trainables.data.cache import GraphCache, default_cache_dir
    from trainables.data.capture import MAX_PAYLOAD_BYTES, Capture
    from trainables.data.datamodule import (
        DEFAULT_BATCH_SIZE,
        CANGraphDataModule,
        stratified_split,
    )
    from trainables.data.dataset import CANGraphDataset, GraphLoader
    from trainables.data.graphs import (
        EDGE_FEATURES,
        NODE_FEATURES,
        NUM_EDGE_FEATURES,
        NUM_NODE_FEATURES,
        GraphArrays,
        build_graphs,
    )
    from trainables.data.layout import DatasetLayout, resolve_dataset
    from trainables.data.reader import read_capture
    from trainables.data.source import GraphSource, LoadedSplit, load_split
    from trainables.data.synthetic import SyntheticConfig, generate_capture, synthetic_splits
    from trainables.data.vocab import OOV_INDEX, Vocabulary

_WHERE = {
    "GraphCache": "cache",
    "default_cache_dir": "cache",
    "MAX_PAYLOAD_BYTES": "capture",
    "Capture": "capture",
    "DEFAULT_BATCH_SIZE": "datamodule",
    "CANGraphDataModule": "datamodule",
    "stratified_split": "datamodule",
    "CANGraphDataset": "dataset",
    "GraphLoader": "dataset",
    "EDGE_FEATURES": "graphs",
    "NODE_FEATURES": "graphs",
    "NUM_EDGE_FEATURES": "graphs",
    "NUM_NODE_FEATURES": "graphs",
    "GraphArrays": "graphs",
    "build_graphs": "graphs",
    "DatasetLayout": "layout",
    "resolve_dataset": "layout",
    "read_capture": "reader",
    "GraphSource": "source",
    "LoadedSplit": "source",
    "load_split": "source",
    "SyntheticConfig": "synthetic",
    "generate_capture": "synthetic",
    "synthetic_splits": "synthetic",
    "OOV_INDEX": "vocab",
    "Vocabulary": "vocab",
}

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EDGE_FEATURES",
    "MAX_PAYLOAD_BYTES",
    "NODE_FEATURES",
    "NUM_EDGE_FEATURES",
    "NUM_NODE_FEATURES",
    "OOV_INDEX",
    "CANGraphDataModule",
    "CANGraphDataset",
    "Capture",
    "DatasetLayout",
    "GraphArrays",
    "GraphCache",
    "GraphLoader",
    "GraphSource",
    "LoadedSplit",
    "SyntheticConfig",
    "Vocabulary",
    "build_graphs",
    "default_cache_dir",
    "generate_capture",
    "load_split",
    "read_capture",
    "resolve_dataset",
    "stratified_split",
    "synthetic_splits",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
