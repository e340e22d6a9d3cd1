"""A trial's `TrainConfig`: its searched settings over the study's fixed ones, with the memory
budget the trial trains within."""

from __future__ import annotations

from typing import Any

from hpo.trainable.context import TrialContext

__all__ = ["train_config"]


def train_config(params: dict[str, Any], context: TrialContext) -> Any:
    """The `TrainConfig` of a trial: its searched settings over the study's fixed ones."""
    from trainables.training.config import BatchTuning, TrainConfig

    settings = context.space.trial_settings(params)
    return TrainConfig(
        mode=settings.mode,
        size=settings.size,
        source=context.source,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        # Without the tuner the eval size is the multiple as it is (the tuner caps it otherwise).
        eval_batch_size=None
        if context.tune_batch_size
        else settings.batch_size * settings.eval_multiplier,
        learning_rate=settings.learning_rate,
        seed=context.seed,
        out_dir=context.runs_dir,
        teacher=context.teacher,
        vgae=context.vgae,
        gat=context.gat,
        batching=BatchTuning(
            tune=context.tune_batch_size,
            memory_budget=_budget_bytes(context),
            # A GPU share is the study's default, keyed so in the factor store (the warm start
            # looks there): not a budget the user asked for.
            budget_is_default=context.memory_budget is None,
            safety_factor=settings.safety_factor,
            eval_multiplier=float(settings.eval_multiplier),
            schedule=settings.schedule,
            memo_path=context.memo_path,
            factor_store_path=context.factor_store_path,
            # A trial with whole GPUs has them to itself; a GPU share is budgeted above.
            num_concurrent_trials=context.num_concurrent_trials
            if context.gpus_per_trial == 0
            else 1,
            default_budget=context.default_budget,
        ),
    )


def _budget_bytes(context: TrialContext) -> int | None:
    if context.memory_budget is not None:
        return context.memory_budget
    import torch

    if torch.cuda.is_available() and 0 < context.gpus_per_trial < 1:
        # Several trials share the GPU: each gets its share of the memory.
        total = torch.cuda.get_device_properties(0).total_memory
        return int(total * context.gpus_per_trial)
    return None
