"""The Ray Tune trainable of a study: one trial runs the tuner-plus-factor trainer.

`train_trial(params, context)` turns Ray's flat parameter dict into a `TrainConfig` (the trial's
searched batch settings, the study's fixed ones from `TrialContext`), runs `run_training` and
reports every epoch to Ray. An out-of-memory end is reported as one last `oom_result` and the
function returns: Ray marks the trial TERMINATED and `OOMAwareOptunaSearch` tells Optuna PRUNED.
With `context.oom_as_error` (the baseline of `benchmarks/bench_oom_learning.py`) it raises
instead, as a trainable that does not know better would: ERROR in Ray, FAIL in Optuna.

This module imports no torch at import time: Ray unpickles the trainable in every worker.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from hpo.searcher import OOMStage, oom_result

if TYPE_CHECKING:
    import pytorch_lightning as pl

    from search_spaces.base import SearchSpace
    from trainables.data.source import GraphSource

__all__ = [
    "TrialContext",
    "TrialOutOfMemoryError",
    "epoch_result",
    "final_result",
    "finished_run",
    "train_config",
    "train_trial",
]

logger = logging.getLogger("hpo.trial")


class TrialOutOfMemoryError(MemoryError):
    """Raised by a trial that ran out of memory when `TrialContext.oom_as_error` is set."""


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares: data, models it builds on, budget, where to write.

    Args:
        space: The study's search space (with the study's overrides: `--epochs`, smoke).
        source: Where the graphs come from (already built into the cache by the driver).
        seed: The study's seed: every trial splits, shuffles and initialises alike, so trials
            differ only in their searched settings.
        study_dir: The study directory; runs go to `<study_dir>/runs/`, the frontier memo to
            `<study_dir>/batch_size_frontier.json`.
        tune_batch_size: Run the batch-size tuner (the tuner-plus-factor trainer); otherwise
            train at the searched batch size as it is.
        memory_budget: Device-memory budget per trial in bytes; None for the default (CPU: the
            available memory over `num_concurrent_trials`; CUDA: `gpus_per_trial` of the GPU).
        gpus_per_trial: The GPU share of a trial, for the default CUDA budget.
        num_concurrent_trials: Trials running at once, for the default CPU budget.
        default_budget: The default CPU budget the driver fixed for the whole study (available
            memory over `num_concurrent_trials` when the study started), so every trial has the
            same frontier-memo key and the tuner runs once; None: each trial computes it.
        factor_store_path: The adaptive safety-factor store every tuned trial updates.
        teacher: kd: the study's teacher checkpoint.
        vgae: curriculum and fusion: the study's VGAE checkpoint.
        gat: fusion: the study's GAT checkpoint.
        oom_as_error: Raise `TrialOutOfMemoryError` on OOM instead of reporting it (baseline).
    """

    space: SearchSpace
    source: GraphSource
    seed: int
    study_dir: Path
    tune_batch_size: bool = True
    memory_budget: int | None = None
    gpus_per_trial: float = 0.0
    num_concurrent_trials: int = 1
    default_budget: int | None = None
    factor_store_path: Path | None = None
    teacher: Path | None = None
    vgae: Path | None = None
    gat: Path | None = None
    oom_as_error: bool = False

    @property
    def metric(self) -> str:
        return self.space.metric

    @property
    def runs_dir(self) -> Path:
        return self.study_dir / "runs"

    @property
    def memo_path(self) -> Path:
        return self.study_dir / "batch_size_frontier.json"


def epoch_result(row: dict[str, float], metric: str, seconds: float) -> dict[str, Any]:
    """The result reported to Ray after an epoch, from an `EpochHistory` row.

    Keys: the metric and every `train_*`/`val_*` value, `epoch` (1-based), `train_batch_size`,
    `num_train_batches`, `graphs_per_second`, `epoch_seconds`, and `peak_memory_bytes` (the
    run's peak so far) when the run has a memory budget.
    """
    graphs = row.get("num_train_graphs", 0.0)
    result: dict[str, Any] = {
        name: value for name, value in row.items() if name.startswith(("train_", "val_"))
    }
    if "peak_memory_bytes" in row:
        result["peak_memory_bytes"] = int(row["peak_memory_bytes"])
    result.update(
        epoch=int(row["epoch"]) + 1,
        train_batch_size=int(row["train_batch_size"]),
        num_train_batches=int(row["num_train_batches"]),
        graphs_per_second=graphs / seconds if seconds > 0 else 0.0,
        epoch_seconds=seconds,
    )
    if metric not in result:
        raise RuntimeError(
            f"epoch {result['epoch']}: the study's metric {metric!r} was not logged (logged:"
            f" {', '.join(sorted(result))}); pick a space whose metric the mode computes"
        )
    return result


def _reporter(context: TrialContext, run_dir: Path) -> pl.Callback:
    """A Lightning callback reporting each epoch to Ray (after validation, with the metric)."""
    import pytorch_lightning as pl

    from trainables.training.callbacks import EpochHistory

    class ReportEpoch(pl.Callback):
        def __init__(self) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            callbacks = trainer.callbacks  # type: ignore[attr-defined]
            history = next(c for c in callbacks if isinstance(c, EpochHistory))
            datamodule = trainer.datamodule  # type: ignore[attr-defined]
            result = epoch_result(
                history.epochs[-1], context.metric, time.perf_counter() - self._start
            )
            result.update(
                node_id=_node_id(),
                eval_batch_size=int(datamodule.eval_batch_size),
                applied_train_batch_size=int(datamodule.batch_sizes_per_epoch[0]),
                run_dir=str(run_dir),
                oom=False,
            )
            tune.report(result)

    return ReportEpoch()


def final_result(run: dict[str, Any]) -> dict[str, Any]:
    """The last result of a trial that trained to the end, from its run's `metrics.json`.

    Keys: every `val_*` value, `test_<split>_<metric>`, the batch sizes (applied, last, eval,
    tuned maxima), tuner seconds, memory budget and peak, `run_dir`, `oom` (False), `done`.
    """
    test = {
        f"test_{split}_{name}": value
        for split, metrics in run.get("test", {}).items()
        for name, value in metrics.items()
    }
    sizes = run.get("batch_sizes_per_epoch") or [run["train_batch_size"]]
    return {
        **{name: value for name, value in run.items() if name.startswith("val_")},
        **test,
        "epoch": run["epochs"],
        "train_batch_size": sizes[-1],
        "applied_train_batch_size": sizes[0],
        "eval_batch_size": run["eval_batch_size"],
        "tuned_max_batch_size": run.get("tuned_max_batch_size"),
        "tuned_max_eval_batch_size": run.get("tuned_max_eval_batch_size"),
        "tuner_seconds": run.get("tuner_seconds"),
        "memo_hit": run.get("memo_hit"),
        "memory_budget_bytes": run.get("memory_budget_bytes"),
        "peak_memory_bytes": run.get("peak_memory_bytes"),
        "device": run.get("device"),
        "trial_seconds": run.get("seconds"),
        "run_dir": run["run_dir"],
        "oom": False,
        "done": True,
    }


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


def train_trial(params: dict[str, Any], context: TrialContext) -> None:
    """Run one trial (Ray's function trainable; bind `context` with `tune.with_parameters`).

    A trial Ray runs again after the driver was killed, though it had finished (Ray saves its
    experiment every few seconds), is not trained again: its results are read back from its
    run's `metrics.json` and reported as they were.
    """
    from trainables.training.run import new_run_dir, run_training

    config = train_config(params, context)
    trial_id = tune.get_context().get_trial_id() or "local"
    run = finished_run(context.runs_dir, trial_id)
    if run is not None:
        logger.info("trial %s finished before the study was interrupted: %s", trial_id, run)
        for row in run["history"]:
            tune.report({**epoch_result(row, context.metric, 0.0), "run_dir": run["run_dir"]})
    else:
        run_dir = new_run_dir(context.runs_dir, f"trial-{trial_id}")
        handler = _log_to(run_dir / "train.log")
        try:
            result = run_training(config, run_dir=run_dir, callbacks=[_reporter(context, run_dir)])
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
        run = {**result.to_json(), "history": result.history}
    if run["oom"]:
        _report_oom(run, context)
        return
    final = final_result(run)
    if context.metric not in final:
        raise RuntimeError(f"the run did not compute the study's metric {context.metric!r}")
    tune.report({**final, "node_id": _node_id()})


def _node_id() -> str:
    """The Ray node this trial runs on (which machine of a cluster)."""
    import ray

    return str(ray.get_runtime_context().get_node_id())


def finished_run(runs_dir: Path, trial_id: str) -> dict[str, Any] | None:
    """The `metrics.json` of a run of `trial_id` that ended (trained or out of memory), if any."""
    for path in sorted(runs_dir.glob(f"trial-{trial_id}-*/metrics.json")):
        try:
            run: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # killed while writing it: that run did not finish
        if "history" in run and "oom" in run:
            return run
    return None


def _report_oom(run: dict[str, Any], context: TrialContext) -> None:
    stage: OOMStage = run.get("oom_stage") or "train"
    history = run["history"]
    sizes = run.get("batch_sizes_per_epoch") or []
    # The size of the epoch in progress (its history row is written after validation).
    tried = sizes[min(len(history), len(sizes) - 1)] if sizes else run["train_batch_size"]
    last = history[-1].get(context.metric) if history else None
    if context.oom_as_error:
        raise TrialOutOfMemoryError(f"out of memory in stage {stage} at train batch size {tried}")
    tune.report(
        {
            **oom_result(
                context.metric,
                context.space.direction,
                stage=stage,
                train_batch_size=tried,
                eval_batch_size=run["eval_batch_size"],
                last_value=None if last is None or math.isnan(last) else last,
            ),
            "epoch": len(history),
            "applied_train_batch_size": run["train_batch_size"],
            "tuned_max_batch_size": run.get("tuned_max_batch_size"),
            "trial_seconds": run.get("seconds"),
            "run_dir": run["run_dir"],
            "node_id": _node_id(),
        }
    )


def _log_to(path: Path) -> logging.Handler:
    """Send this trial's log lines to its run directory as well (Ray keeps workers' stderr)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler
