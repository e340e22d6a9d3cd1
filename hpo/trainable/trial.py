"""`train_trial`, the function Ray Tune runs for each trial: it trains (or reads back a run that
had finished), reports the end to Ray, out of memory included, and logs to the run directory."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

from ray import tune

from hpo.searcher import OOMStage, oom_result
from hpo.trainable.config import train_config
from hpo.trainable.context import TrialContext, TrialOutOfMemoryError
from hpo.trainable.results import (
    TrialReports,
    final_result,
    finished_run,
    node_id,
    reporter,
    unfinished_run_dirs,
)

__all__ = ["train_trial"]

logger = logging.getLogger("hpo.trial")


def train_trial(params: dict[str, Any], context: TrialContext) -> None:
    """Run one trial (Ray's function trainable; bind `context` with `tune.with_parameters`).

    A trial Ray runs again after the driver was killed, though it had finished (Ray saves its
    experiment every few seconds), is not trained again: its last result is read back from its
    run's `metrics.json` and reported as it was. Its epochs are not reported again: they went
    to Optuna and MLflow as they ended, and a scheduler (ASHA) fed them again could stop the
    trial at a rung, a finished run with a model then labelled stopped early. One that had not
    finished (stopped with the study, or a retry after an error) trains again from the start
    into a new run folder, and the folders its unfinished attempts left are removed.
    """
    from trainables.training.run import new_run_dir, run_training

    config = train_config(params, context)
    trial_id = tune.get_context().get_trial_id() or "local"
    report = TrialReports(trial_id)
    run = finished_run(context.runs_dir, trial_id)
    if run is not None:
        logger.info("trial %s finished before the study was interrupted: %s", trial_id, run)
    else:
        _remove_unfinished_runs(context.runs_dir, trial_id)
        run_dir = new_run_dir(context.runs_dir, f"trial-{trial_id}")
        handler = _log_to(run_dir / "train.log")
        try:
            result = run_training(
                config, run_dir=run_dir, callbacks=[reporter(context, run_dir, report)]
            )
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
        run = {**result.to_json(), "history": result.history}
    if run["oom"]:
        _report_oom(run, context, report)
        return
    final = final_result(run)
    if context.metric not in final:
        raise RuntimeError(f"the run did not compute the study's metric {context.metric!r}")
    report({**final, "node_id": node_id()})


def _remove_unfinished_runs(runs_dir: Path, trial_id: str) -> None:
    """Remove the folders this trial's stopped or failed attempts left: it trains again from
    the start, into a new folder, and each trial has one run folder. A failed attempt's error
    stays in Ray's trial folder (`error.txt`)."""
    for run_dir in unfinished_run_dirs(runs_dir, trial_id):
        logger.info(
            "trial %s: removing %s, left unfinished by an earlier attempt", trial_id, run_dir
        )
        shutil.rmtree(run_dir, ignore_errors=True)


def _report_oom(run: dict[str, Any], context: TrialContext, report: TrialReports) -> None:
    stage: OOMStage = run.get("oom_stage") or "train"
    history = run["history"]
    sizes = run.get("batch_sizes_per_epoch") or []
    # The size of the epoch in progress (its history row is written after validation). Out of
    # memory in the tuner, no size was applied: the searched one was never tried.
    tuner = stage == "tuner"
    tried = sizes[min(len(history), len(sizes) - 1)] if sizes else run["train_batch_size"]
    last = history[-1].get(context.metric) if history else None
    if context.oom_as_error:
        at = "" if tuner else f" at train batch size {tried}"
        raise TrialOutOfMemoryError(f"out of memory in stage {stage}{at}")
    report(
        {
            **oom_result(
                context.metric,
                context.space.direction,
                stage=stage,
                train_batch_size=None if tuner else tried,
                eval_batch_size=None if tuner else run["eval_batch_size"],
                last_value=None if last is None or math.isnan(last) else last,
            ),
            "epoch": len(history),
            "applied_train_batch_size": None if tuner else run["train_batch_size"],
            "tuned_max_batch_size": run.get("tuned_max_batch_size"),
            "trial_seconds": run.get("seconds"),
            "run_dir": run["run_dir"],
            "node_id": node_id(),
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
