"""`StudyProgress`: one log line per study event, in the driver (Ray's tables stay off)."""

from __future__ import annotations

import logging
import math
from typing import Any

from ray.tune import Callback

from hpo.searcher import OOM_STAGE_KEY, end_state, is_oom_result

__all__ = [
    "NoRayResumeHint",
    "NoRayTokenNotice",
    "OneLineTrialErrors",
    "StudyProgress",
    "describe_config",
]

logger = logging.getLogger("hpo.run")


def describe_config(config: dict[str, Any]) -> str:
    """A trial's searched settings in one short phrase."""
    parts = [
        f"batch {config.get('batch_size')}",
        f"factor {config.get('safety_factor', float('nan')):.2f}",
        f"eval x{config.get('eval_multiplier')}",
        f"lr {config.get('learning_rate', float('nan')):.2g}",
    ]
    schedule = config.get("schedule_type", "none")
    fields = [
        f"{k.removeprefix('schedule_')}={v}"
        for k, v in sorted(config.items())
        if k.startswith("schedule_") and k != "schedule_type"
    ]
    parts.append(f"schedule {schedule}" + (f" ({', '.join(fields)})" if fields else ""))
    return ", ".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4f}"
    return str(value)


class _RayLogFilter(logging.Filter):
    """A filter on one of Ray's loggers (`LOGGER`), installed once (`install`)."""

    LOGGER = ""

    @classmethod
    def install(cls) -> None:
        target = logging.getLogger(cls.LOGGER)
        if not any(isinstance(f, cls) for f in target.filters):
            target.addFilter(cls())


class OneLineTrialErrors(_RayLogFilter):
    """Ray Tune's "Trial task failed for trial X" as one line, its exception's last line added
    and its traceback left out: a failed attempt printed ~50 lines on stderr. The traceback is
    in the trial's `error.txt`, which `StudyProgress` names when the trial has failed for good.
    Install on Ray's `tune_controller` logger (`install`)."""

    LOGGER = "ray.tune.execution.tune_controller"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Trial task failed for trial"):
            error = record.exc_info[1]
            lines = str(error).strip().splitlines() if error is not None else []
            last = lines[-1] if lines else type(error).__name__
            record.msg = f"{record.getMessage()}: {last}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


class NoRayResumeHint(_RayLogFilter):
    """Drops Ray Tune's "Experiment has been interrupted ... Resume experiment with:
    Tuner.restore(path=..., trainable=...)": a study resumes with `hpo.run --resume` (it keeps
    the study's settings, Optuna and MLflow state), whose command the driver logs itself.
    Install on Ray's `tune` logger (`install`)."""

    LOGGER = "ray.tune.tune"

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Experiment has been interrupted")


class NoRayTokenNotice(_RayLogFilter):
    """Drops Ray's "Token authentication is enabled for this Ray cluster. Set
    RAY_AUTH_MODE=disabled to opt out ...", which a new local instance prints unformatted on
    every start: the driver's own "Ray dashboard: ..." line says how to sign in with the token,
    and turning authentication off is not advice this project gives. Ray's warnings of an
    authentication failure or a missing token pass. Install on Ray's token-setup logger
    (`install`)."""

    LOGGER = "ray._private.authentication.authentication_token_setup"

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Token authentication is enabled for this Ray")


def _count_finished(trials: list, trial: Any) -> int:
    """How many of the study's trials have ended, `trial` (ending now) included.

    Counted from Ray's trials, not by the callback: a resumed study's Ray experiment holds the
    trials that ended before the interruption (TERMINATED or ERROR, not run again), and its
    callbacks start afresh, so a count of their own began at 1 again after `--resume`.
    """
    from ray.tune.experiment import Trial

    ended = {t.trial_id for t in trials if t.status in (Trial.TERMINATED, Trial.ERROR)}
    return len(ended | {trial.trial_id})


class StudyProgress(Callback):
    """Logs trial starts, each epoch, and how each trial ended ("(N finished)": of the whole
    study, trials that ended before a `--resume` included)."""

    def __init__(self, metric: str, epochs: int) -> None:
        self._metric = metric
        self._epochs = epochs

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        logger.info("trial %s started: %s", trial.trial_id, describe_config(trial.config))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if is_oom_result(result) or result.get("done"):
            return
        logger.info(
            "trial %s epoch %s/%d: %s %s, train batch %s, %.0f graphs/s",
            trial.trial_id,
            result.get("epoch"),
            self._epochs,
            self._metric,
            _value(result.get(self._metric)),
            result.get("train_batch_size"),
            result.get("graphs_per_second", 0.0),
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        finished = _count_finished(trials, trial)
        last = trial.last_result or {}
        state = end_state(last, error=False)
        if state == "stopped-early":
            logger.info(
                "trial %s stopped early by the scheduler after epoch %s: %s %s (%d finished)",
                trial.trial_id,
                last.get("epoch"),
                self._metric,
                _value(last.get(self._metric)),
                finished,
            )
            return
        if state == "pruned-oom":
            stage, size = last.get(OOM_STAGE_KEY), last.get("train_batch_size")
            logger.info(
                "trial %s pruned: out of memory in stage %s%s (%d finished)",
                trial.trial_id,
                stage,
                "" if size is None else f" at train batch {size}",
                finished,
            )
            return
        logger.info(
            "trial %s complete: %s %s, applied train batch %s, eval %s (%d finished)",
            trial.trial_id,
            self._metric,
            _value(last.get(self._metric)),
            last.get("applied_train_batch_size"),
            last.get("eval_batch_size"),
            finished,
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        logger.warning(
            "trial %s failed (%d finished); its error: %s",
            trial.trial_id,
            _count_finished(trials, trial),
            trial.error_file or "(no error file)",
        )
