"""Training modes as LightningModules on one base: `normal`, `autoencoder`, `curriculum`, `kd`,
`fusion`. Algorithms live in plain functions; the modules translate batches into calls."""

from trainables.modes.autoencoder import AutoencoderModule
from trainables.modes.base import DetectionModule
from trainables.modes.classifier import ClassifierModule, DistillationModule
from trainables.modes.logging import EpochLogLine
from trainables.modes.metrics import METRIC_NAMES, detection_metrics

__all__ = [
    "METRIC_NAMES",
    "AutoencoderModule",
    "ClassifierModule",
    "DetectionModule",
    "DistillationModule",
    "EpochLogLine",
    "detection_metrics",
]
