"""A run's safety factor: the one asked for, or `auto` from the adaptive store, and the key its
outcome is recorded under."""

from __future__ import annotations

import logging

import torch

from trainables.batching.adaptive_factor import SafetyFactorKey, SafetyFactorStore
from trainables.data.cache import default_cache_dir
from trainables.training.config import TrainConfig

__all__ = ["DEFAULT_SAFETY_FACTOR", "factor_key", "factor_store", "resolve_safety_factor"]

logger = logging.getLogger("trainables.train")

DEFAULT_SAFETY_FACTOR = 0.9


def resolve_safety_factor(config: TrainConfig, device: torch.device) -> float:
    """The run's safety factor: the one asked for, or with `auto` the adaptive store's
    recommendation for this run's key (`DEFAULT_SAFETY_FACTOR` before any outcome)."""
    factor = config.batching.safety_factor
    if factor != "auto":
        return float(factor)
    store = factor_store(config)
    recommended = store.recommend(factor_key(config, device), default=DEFAULT_SAFETY_FACTOR)
    logger.info("safety factor auto: %.3f from %s", recommended, store.path)
    return recommended


def factor_store(config: TrainConfig) -> SafetyFactorStore:
    """The adaptive safety-factor store a run reads and records to."""
    return SafetyFactorStore(
        config.batching.factor_store_path or default_cache_dir() / "safety_factors.json"
    )


def factor_key(config: TrainConfig, device: torch.device) -> SafetyFactorKey:
    """The adaptive store's key of a run: keyed by the budget the user asked for (0 = the
    default budget), so that `--safety-factor auto` finds it again."""
    return SafetyFactorKey(
        dataset=config.source.dataset_name,
        mode=config.mode,
        model_size=config.resolved_size,
        device_type=device.type,
        budget_bytes=config.batching.memory_budget or 0,
    )
