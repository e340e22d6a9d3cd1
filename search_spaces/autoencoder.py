"""`autoencoder`: a VGAE trained on normal traffic; its anomaly score's AUROC decides.

An unsupervised detector has no threshold to compute F1 with, so the metric is `val_auroc`.
"""

from __future__ import annotations

from search_spaces.base import SearchSpace

__all__ = ["SPACE"]

SPACE = SearchSpace(name="autoencoder", mode="autoencoder", metric="val_auroc")
