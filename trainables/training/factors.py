"""A run's safety factor: the one asked for, or `auto` from the adaptive store, and the key its
outcome is recorded under."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from trainables.batching.adaptive_factor import SafetyFactorKey, SafetyFactorStore
from trainables.data.cache import default_cache_dir
from trainables.training.config import OomStage, TrainConfig

__all__ = [
    "DEFAULT_SAFETY_FACTOR",
    "factor_key",
    "factor_store",
    "record_factor_outcome",
    "resolve_safety_factor",
]

logger = logging.getLogger("trainables.train")

DEFAULT_SAFETY_FACTOR = 0.9


def resolve_safety_factor(config: TrainConfig, device: torch.device) -> float:
    """The run's safety factor: the one asked for, or with `auto` the adaptive store's
    recommendation for this run's key (`DEFAULT_SAFETY_FACTOR` before any outcome)."""
    factor = config.batching.safety_factor
    store = factor_store(config)
    if factor != "auto":
        store.entries()  # the run records to it at the end: a damaged store stops it now
        return float(factor)
    key = factor_key(config, device)
    if store.num_records(key) == 0:
        # Said as such: "0.900 from <store>" read as the store's recommendation.
        logger.info(
            "safety factor auto: the default %.3f (%s holds no outcome yet for %s %s %s on %s"
            " with this budget)",
            DEFAULT_SAFETY_FACTOR,
            store.path,
            key.dataset,
            key.mode,
            key.model_size,
            key.device_type,
        )
        return DEFAULT_SAFETY_FACTOR
    recommended = store.recommend(key, default=DEFAULT_SAFETY_FACTOR)
    logger.info("safety factor auto: %.3f from %s", recommended, store.path)
    return recommended


def factor_store(config: TrainConfig) -> SafetyFactorStore:
    """The adaptive safety-factor store a run reads and records to."""
    return SafetyFactorStore(
        config.batching.factor_store_path or default_cache_dir() / "safety_factors.json"
    )


def factor_key(config: TrainConfig, device: torch.device) -> SafetyFactorKey:
    """The adaptive store's key of a run: keyed by the budget the user asked for (0 = the
    default budget), so that `--safety-factor auto` and a study's warm start find it again."""
    batching = config.batching
    return SafetyFactorKey(
        dataset=config.source.dataset_name,
        mode=config.mode,
        model_size=config.resolved_size,
        device_type=device.type,
        budget_bytes=0 if batching.budget_is_default else (batching.memory_budget or 0),
    )


def record_factor_outcome(
    config: TrainConfig,
    device: torch.device,
    *,
    factor: float,
    ceiling: int | None,
    sizes: Sequence[int],
    peak_fraction: float | None,
    oom_stage: OomStage | None,
) -> bool:
    """Record a tuned run's outcome in the adaptive store when it says something about `factor`.

    The factor sets the train batch to `ceiling` (tuned max x factor) unless the run asked for
    less; a schedule may then move it (up to the tuned max). An outcome is the factor's when:

    - the largest train batch of the run's schedule is the factor's `ceiling`: its peak (or its
      out-of-memory error) is what that factor gives;
    - or the run ran out of memory with every batch below the ceiling: the factor's larger
      batch would have too.

    Not recorded: a run that stayed within the budget at a batch size it asked for below the
    ceiling (an HPO trial's own batch size; its low peak says nothing about the factor, and
    counting it would raise the recommendation toward 1.0 whatever memory the factor's batch
    takes), a run whose schedule grew past the ceiling, an out-of-memory error in validation or
    test at an eval batch size asked for (`--eval-batch-size`: the factor did not set it), and
    an out-of-memory error in the tuner, before the factor applied.

    Returns:
        Whether the outcome was recorded.
    """
    oom = oom_stage is not None
    if ceiling is None or oom_stage == "tuner":
        reason = "the tuner ran out of memory before the factor applied"
    elif (largest := max(sizes, default=ceiling)) > ceiling:
        reason = f"the schedule grew the train batch to {largest}, past the factor's {ceiling}"
    elif largest < ceiling and not oom:
        reason = f"the run's largest train batch was {largest}, below the factor's {ceiling}"
    elif oom_stage in ("validation", "test") and config.eval_batch_size is not None:
        reason = f"--eval-batch-size {config.eval_batch_size}, not the factor, set the eval batch"
    else:
        store = factor_store(config)
        try:
            recommended = store.record(
                factor_key(config, device), factor=factor, peak_fraction=peak_fraction, oom=oom
            )
        except OSError as err:  # e.g. a read-only cache on a cluster: the run itself stands
            logger.warning(
                "safety factor %.3f not recorded: %s cannot be written (%s)",
                factor,
                store.path,
                err,
            )
            return False
        logger.info(
            "safety factor %.3f %s: recommendation now %.3f in %s",
            factor,
            "ran out of memory" if oom else f"peaked at {peak_fraction:.0%} of the budget",
            recommended,
            store.path,
        )
        return True
    logger.info("safety factor %.3f not recorded to the adaptive store: %s", factor, reason)
    return False
