"""`curriculum` mode data: every attack graph plus a growing share of hard normal graphs per epoch.

A normal graph is hard when a VGAE trained on normal traffic reconstructs it badly (a high
`graph_anomaly_scores`). Each epoch draws a fresh sample: all attack graphs plus
`ratio * num_attack` normal graphs, the ratio (normal graphs per attack graph) growing linearly
from 1.0 (attack:normal 1:1) to 10.0 (1:10), the normal graphs drawn without replacement with
weights growing with their difficulty rank. The algorithm is plain functions;
`CurriculumDataModule` only picks the epoch and calls them.
"""

from __future__ import annotations

from trainables.modes.curriculum.datamodule import CurriculumDataModule
from trainables.modes.curriculum.sampling import (
    curriculum_ratio,
    curriculum_sample,
    max_epoch_size,
)
from trainables.modes.curriculum.scoring import SCORING_BATCH_SIZE, score_graphs

__all__ = [
    "SCORING_BATCH_SIZE",
    "CurriculumDataModule",
    "curriculum_ratio",
    "curriculum_sample",
    "max_epoch_size",
    "score_graphs",
]
