"""The states a study's trials end in, and the line that counts them (`summary.json`, the
table `hpo.run` prints, `hpo.report`). Imports nothing heavy: `hpo.report` reads MLflow only."""

from __future__ import annotations

from typing import Any

__all__ = ["ENDED_STATES", "TRIAL_STATES", "counts_line", "num_ended"]

# How a trial that ended ended (`hpo.searcher.end_state`): trained every epoch, out of memory,
# stopped after an epoch by the scheduler (`--scheduler asha`), or raised.
ENDED_STATES = ("complete", "pruned-oom", "stopped-early", "failed")
# Plus a trial started or pending when the study was stopped, run again by `--resume`.
TRIAL_STATES = (*ENDED_STATES, "interrupted")


def num_ended(counts: dict[str, Any]) -> int:
    """The trials that ended, from the `num_*` counts of a summary or an `hpo.report` report:
    `num_trials` counts the interrupted ones too (run again by `--resume`)."""
    return int(counts["num_trials"]) - int(counts.get("num_interrupted") or 0)


def counts_line(counts: dict[str, Any]) -> str:
    """ "N trials: ... complete, ... pruned (out of memory), ... failed", from the `num_*` counts
    of a summary or an `hpo.report` report; stopped-early and interrupted trials where any."""
    stopped = counts.get("num_stopped_early") or 0
    interrupted = counts.get("num_interrupted") or 0
    return (
        f"{counts['num_trials']} trials: {counts['num_complete']} complete,"
        f" {counts['num_pruned_oom']} pruned (out of memory),"
        + (f" {stopped} stopped early by the scheduler," if stopped else "")
        + f" {counts['num_failed']} failed"
        + (f", {interrupted} interrupted" if interrupted else "")
    )
