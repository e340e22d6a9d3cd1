"""Detection metrics (attack = positive class) through torchmetrics, and their log names."""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
)

__all__ = ["METRIC_NAMES", "detection_metrics", "finite"]

METRIC_NAMES = ("f1", "precision", "recall", "accuracy", "auroc")


def detection_metrics(*, threshold: float = 0.5) -> MetricCollection:
    """F1/precision/recall of the attack class, accuracy and AUROC, fed `(score, label)`.

    Scores are attack probabilities (or any score in [0, 1]); `threshold` turns them into
    decisions for every metric but AUROC.

    Example:
        >>> m = detection_metrics()
        >>> m.update(torch.tensor([0.9, 0.2, 0.7]), torch.tensor([1, 0, 0]))
        >>> round(float(m.compute()["f1"]), 3)
        0.667
    """
    return MetricCollection(
        {
            "f1": BinaryF1Score(threshold=threshold),
            "precision": BinaryPrecision(threshold=threshold),
            "recall": BinaryRecall(threshold=threshold),
            "accuracy": BinaryAccuracy(threshold=threshold),
            "auroc": BinaryAUROC(),
        }
    )


def finite(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Tensor metrics to plain floats (NaN when a metric is undefined, e.g. one class only)."""
    return {name: float(value) for name, value in values.items()}
