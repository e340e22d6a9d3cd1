"""A finished study's summary: `summary.json`, the table printed at the end, orphaned trials.

`summary.json` holds `space`, `study`, `metric`, `direction`, `num_trials` (every trial listed,
interrupted ones included: the counts by state add up to it), `num_complete`,
`num_pruned_oom`, `num_stopped_early`, `num_failed`, `num_interrupted`, `best_value`,
`best_config`, `best_trial`, where the results
are, and `trials`: per trial its `trial_id`, `state` (`complete`, `pruned-oom`, `stopped-early`:
stopped after an epoch by `--scheduler asha`, `failed`, or `interrupted`: started or pending
when the study was stopped, run again by `--resume`),
`oom_stage`, `config` (its parameters), the applied `train_batch_size` and `eval_batch_size`,
`metric` (the value it ended with; None unless complete), `epochs` run, `run_dir`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.searcher import OOM_STAGE_KEY, end_state
from hpo.states import TRIAL_STATES, counts_line

if TYPE_CHECKING:
    from ray.tune import ResultGrid

    from hpo.study import StudyConfig

__all__ = [
    "TRIAL_STATES",
    "counts_line",
    "fail_orphaned_trials",
    "finite",
    "format_table",
    "remove_abandoned_runs",
    "summarise",
    "trial_row",
]

logger = logging.getLogger("hpo.run")


def finite(value: Any) -> float | None:
    """`value` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def trial_row(
    trial_id: str,
    config: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
    error: BaseException | None,
    metric: str,
) -> dict[str, Any]:
    """One trial's entry of `summary.json`, from Ray's result of it."""
    metrics = metrics or {}
    state: str = end_state(metrics, error=error is not None)
    if state in ("complete", "stopped-early") and not metrics.get("done"):
        # Ray marks a trial's last result done when it ends (trained to the end, or stopped by
        # the scheduler); without that, the study was stopped before the trial ended.
        state = "interrupted"
    applied = metrics.get("applied_train_batch_size", metrics.get("train_batch_size"))
    return {
        "trial_id": trial_id,
        "state": state,
        "oom_stage": metrics.get(OOM_STAGE_KEY) if state == "pruned-oom" else None,
        "config": dict(config or {}),
        "train_batch_size": applied,
        "eval_batch_size": metrics.get("eval_batch_size"),
        "tuned_max_batch_size": metrics.get("tuned_max_batch_size"),
        "metric": finite(metrics.get(metric)) if state == "complete" else None,
        "epochs": metrics.get("epoch"),
        "seconds": finite(metrics.get("time_total_s")),
        "run_dir": metrics.get("run_dir"),
        "node_id": metrics.get("node_id"),
        "error": None if error is None else str(error).strip().splitlines()[-1][:300],
    }


def summarise(config: StudyConfig, results: ResultGrid) -> dict[str, Any]:
    """The summary of a study from its Ray results (one row per Ray trial).

    A row's id and config are its Ray trial's own, not its last result's (`Result.config`
    is the result's "config"): a trial stopped before its first report on a reused worker has
    as last result what the worker filled in when Ray handed it over, before resetting it to
    the trial: the worker's previous trial's id and config, which its row showed.
    """
    space = config.space
    # `ResultGrid` makes its results from these trials, one each, in this order.
    trials = results._experiment_analysis.trials
    rows = []
    for index in range(len(results)):
        result, trial = results[index], trials[index]
        rows.append(
            trial_row(trial.trial_id, trial.config, result.metrics, result.error, space.metric)
        )
    rows.sort(key=lambda row: row["trial_id"])
    return build_summary(config, rows)


def build_summary(config: StudyConfig, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary object from trial rows (see the module docstring)."""
    space = config.space
    complete = [r for r in rows if r["state"] == "complete" and r["metric"] is not None]
    best = None
    if complete:
        pick = max if space.direction == "max" else min
        best = pick(complete, key=lambda r: r["metric"])
    paths = config.paths
    return {
        "space": space.name,
        "study": config.name,
        "study_dir": str(config.study_dir.resolve()),
        "metric": space.metric,
        "direction": space.direction,
        "num_samples": config.num_samples,
        # Every trial of the summary, so that the counts by state add up to it; the ones that
        # ended are `num_ended(summary)` (interrupted ones run again on `--resume`).
        "num_trials": len(rows),
        "num_interrupted": sum(r["state"] == "interrupted" for r in rows),
        "num_complete": sum(r["state"] == "complete" for r in rows),
        "num_pruned_oom": sum(r["state"] == "pruned-oom" for r in rows),
        "num_stopped_early": sum(r["state"] == "stopped-early" for r in rows),
        "num_failed": sum(r["state"] == "failed" for r in rows),
        "best_value": None if best is None else best["metric"],
        "best_config": None if best is None else best["config"],
        "best_trial": None if best is None else best["trial_id"],
        "optuna_storage": paths.optuna_url,
        "optuna_study": config.name,
        "ray_experiment": str(paths.experiment.resolve()),
        "trials": list(rows),
    }


def fail_orphaned_trials(config: StudyConfig) -> int:
    """Mark FAIL the Optuna trials a killed driver left RUNNING; return how many.

    A driver killed between asking Optuna for a trial and saving the Ray experiment leaves a
    RUNNING trial that no Ray trial will ever finish. Called once the study has all its trials.
    """
    import optuna
    from optuna.trial import TrialState

    storage = optuna.storages.RDBStorage(config.paths.optuna_url)
    study = optuna.load_study(study_name=config.name, storage=storage)
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return len(orphans)


def remove_abandoned_runs(config: StudyConfig, summary: dict[str, Any]) -> list[Path]:
    """Remove the run folders of trials that are none of the summary's: started by a driver
    killed before Ray saved them, never to run again (the resume asked the searcher for new
    trials in their place; `fail_orphaned_trials`). Only unfinished folders: a run that ended
    is kept. Called once the study has all its trials; returns the folders removed.
    """
    import shutil

    from hpo.trainable.results import abandoned_run_dirs

    known = {row["trial_id"] for row in summary["trials"]}
    removed = abandoned_run_dirs(config.paths.runs, known)
    for run_dir in removed:
        logger.info(
            "%s: a trial started by a driver killed before Ray saved it, never to run: removed",
            run_dir,
        )
        shutil.rmtree(run_dir, ignore_errors=True)
    return removed


def format_table(summary: dict[str, Any]) -> str:
    """The table of trials, the best configuration and where the results are, as text."""
    metric = summary["metric"]
    header = ("trial", "state", "oom stage", "train", "eval", "factor", "schedule", metric)
    lines = []
    for row in summary["trials"]:
        config = row["config"]
        factor = config.get("safety_factor")
        value = row["metric"]
        lines.append(
            (
                row["trial_id"],
                row["state"],
                row["oom_stage"] or "-",
                str(row["train_batch_size"] if row["train_batch_size"] is not None else "-"),
                str(row["eval_batch_size"] if row["eval_batch_size"] is not None else "-"),
                f"{factor:.2f}" if isinstance(factor, float) else "-",
                str(config.get("schedule_type", "-")),
                f"{value:.4f}" if value is not None else "-",
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.append("")
    out.append(counts_line(summary))
    if summary["best_config"] is not None:
        out.append(
            f"best: {metric} {summary['best_value']:.4f} (trial {summary['best_trial']})"
            f" with {json.dumps(summary['best_config'], sort_keys=True)}"
        )
    else:
        out.append("best: none (no trial completed)")
    out.append(f"summary: {Path(summary['study_dir']) / 'summary.json'}")
    out.append(f"optuna: {summary['optuna_storage']} (study {summary['optuna_study']})")
    out.append(f"ray experiment: {summary['ray_experiment']}")
    mlflow = summary.get("mlflow")
    if mlflow:
        registered = mlflow.get("registered_model")
        out.append(
            f"mlflow: {mlflow['tracking_uri']}, experiment {mlflow['experiment']}, run"
            f" {mlflow['parent_run_id']}"
            + (f"; best model {registered['name']} v{registered['version']}" if registered else "")
        )
    return "\n".join(out)
