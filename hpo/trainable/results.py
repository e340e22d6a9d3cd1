"""What a trial reports to Ray: a result per epoch (`epoch_result`, sent by the `reporter`
callback), the last result of a trial that trained to the end (`final_result`), the run of a
trial that ended before the study was interrupted (`finished_run`), and the folders its stopped
attempts left (`unfinished_run_dirs`), or trials no resume will run (`abandoned_run_dirs`)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from hpo.searcher import TRAINED_KEY
from hpo.trainable.context import TrialContext

if TYPE_CHECKING:
    import pytorch_lightning as pl

__all__ = [
    "TrialReports",
    "abandoned_run_dirs",
    "epoch_result",
    "final_result",
    "finished_run",
    "node_id",
    "reporter",
    "run_sizes",
    "unfinished_run_dirs",
]


class TrialReports:
    """A trial's reports to Ray (`tune.report`); the first carries a marker checkpoint.

    Ray saves the experiment's state (its trials, the searcher's) every 10 s at most. A trial
    that started and finished between two saves was unknown to the state a killed driver left
    (a SLURM job cut off): the resume ran its configuration again as a new trial, Optuna and
    MLflow counted it twice, and the summary left the finished one out. A trial checkpoint makes
    Ray save the state at the end of the step that receives it (the study keeps one checkpoint
    a trial, `CheckpointConfig(num_to_keep=1)`, which is what asks for that), so a trial is in
    the saved state from its first report on, and one that finished is read back on a resume
    (`finished_run`). The checkpoint is a file naming the trial: nothing restores from it.
    """

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id
        self._marked = False

    def __call__(self, metrics: dict[str, Any]) -> None:
        if self._marked:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="trial-marker-") as folder:
            (Path(folder) / "trial.json").write_text(json.dumps({"trial_id": self.trial_id}))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        self._marked = True


def epoch_result(row: dict[str, float], metric: str) -> dict[str, Any]:
    """The result reported to Ray after an epoch, from an `EpochHistory` row (as the epoch
    ended, or read back from a finished run's `metrics.json`: the same values).

    Keys: the metric and every `train_*`/`val_*` value, `epoch` (1-based), `train_batch_size`,
    `num_train_batches`, `graphs_per_second`, `epoch_seconds`, `trained_to_end` (False: a trial
    whose last result this is was stopped by the scheduler), and `peak_memory_bytes` (the run's
    peak so far) when the run has a memory budget.
    """
    graphs = row.get("num_train_graphs", 0.0)
    seconds = row.get("epoch_seconds", 0.0)
    result: dict[str, Any] = {
        name: value for name, value in row.items() if name.startswith(("train_", "val_"))
    }
    if "peak_memory_bytes" in row:
        result["peak_memory_bytes"] = int(row["peak_memory_bytes"])
    result.update(
        {TRAINED_KEY: False},  # the last epoch's result too: the test and the model come after
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


def reporter(context: TrialContext, run_dir: Path, report: TrialReports) -> pl.Callback:
    """A Lightning callback reporting each epoch to Ray (after validation, with the metric)."""
    import pytorch_lightning as pl

    from trainables.training.callbacks import EpochHistory

    class ReportEpoch(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            callbacks = trainer.callbacks  # type: ignore[attr-defined]
            history = next(c for c in callbacks if isinstance(c, EpochHistory))
            datamodule = trainer.datamodule  # type: ignore[attr-defined]
            report(
                {
                    **epoch_result(history.epochs[-1], context.metric),
                    **run_sizes(
                        int(datamodule.batch_sizes_per_epoch[0]),
                        int(datamodule.eval_batch_size),
                        run_dir,
                    ),
                }
            )

    return ReportEpoch()


def run_sizes(applied: int, eval_batch_size: int, run_dir: Path | str) -> dict[str, Any]:
    """What every epoch's result adds to `epoch_result`: the run's applied train and eval batch
    sizes, where it runs and writes, and `oom` (False)."""
    return {
        "applied_train_batch_size": applied,
        "eval_batch_size": eval_batch_size,
        "run_dir": str(run_dir),
        "node_id": node_id(),
        "oom": False,
    }


def final_result(run: dict[str, Any]) -> dict[str, Any]:
    """The last result of a trial that trained to the end, from its run's `metrics.json`.

    Keys: every `val_*` value, `test_<split>_<metric>`, the batch sizes (applied, last, eval,
    tuned maxima), tuner seconds, memory budget and peak, `run_dir`, `oom` (False),
    `trained_to_end` (True), `done`.
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
        TRAINED_KEY: True,
        "done": True,
    }


def finished_run(runs_dir: Path, trial_id: str) -> dict[str, Any] | None:
    """The `metrics.json` of a run of `trial_id` that ended (trained or out of memory), if any."""
    for run_dir in _trial_run_dirs(runs_dir, trial_id):
        run = _ended_run(run_dir)
        if run is not None:
            return run
    return None


def unfinished_run_dirs(runs_dir: Path, trial_id: str) -> list[Path]:
    """The run folders of `trial_id` that hold no ended run: left by an attempt that was
    stopped (a driver stopped or killed, then `--resume`) or failed. Never another trial's."""
    return [path for path in _trial_run_dirs(runs_dir, trial_id) if _ended_run(path) is None]


def abandoned_run_dirs(runs_dir: Path, known: set[str]) -> list[Path]:
    """The run folders that hold no ended run, of trials none of `known` (trial ids)."""
    return [
        path
        for path in _trial_run_dirs(runs_dir, "*")
        if path.name.split("-")[1] not in known and _ended_run(path) is None
    ]


def _trial_run_dirs(runs_dir: Path, trial_id: str) -> list[Path]:
    # `new_run_dir` names them `trial-<id>-<time>-<random>`; an id holds no "-".
    return sorted(path for path in runs_dir.glob(f"trial-{trial_id}-*") if path.is_dir())


def _ended_run(run_dir: Path) -> dict[str, Any] | None:
    try:
        run: dict[str, Any] = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None  # none, or killed while writing it: that run did not finish
    return run if isinstance(run, dict) and "history" in run and "oom" in run else None


def node_id() -> str:
    """The Ray node this trial runs on (which machine of a cluster)."""
    import ray

    return str(ray.get_runtime_context().get_node_id())
