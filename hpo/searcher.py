"""`OOMAwareOptunaSearch`: Ray's `OptunaSearch` telling Optuna PRUNED for out-of-memory trials.

A trial that runs out of memory is not a failure of its configuration's code but a verdict on
its batch sizes, and the sampler should learn from it. Ray's `OptunaSearch` cannot express that:

- an exception in the trainable makes the trial ERROR in Ray and FAIL in Optuna, and TPE ignores
  FAIL trials entirely, so it keeps proposing batch sizes that do not fit;
- a trial that ends without the metric in its last result is rejected by Ray's metric check
  (`TuneController._validate_result_metrics`), unless that check is turned off for every trial.

So the trainable catches the out-of-memory error itself, reports one last result built by
`oom_result` (the metric is there, so Ray's check passes, plus `oom: True`, the stage and the
batch sizes tried) and returns: Ray marks the trial TERMINATED. This searcher recognises that
result: it never records its stand-in metric, and tells Optuna PRUNED with the user attributes
`oom`, `oom_stage`, `train_batch_size` and `eval_batch_size`. Optuna keeps the intermediate values
the trial reported before (the last one becomes the pruned trial's value), and TPE counts PRUNED
trials among its observations.

A trial the scheduler (ASHA) stopped after an epoch is PRUNED too, with the user attribute
`stopped_early`: `OptunaSearch` would tell COMPLETE with a one-epoch value, ranked by TPE against
trials that trained every epoch. Each result says whether the trial has trained to the end
(`TRAINED_KEY`); `end_state` tells the four ends apart. Every other trial goes to `OptunaSearch`
unchanged: COMPLETE with the metric, FAIL on a real error (ERROR in Ray).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import optuna
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

if TYPE_CHECKING:
    from search_spaces.choices import Direction

__all__ = [
    "EVAL_BATCH_SIZE_KEY",
    "OOM_KEY",
    "OOM_STAGES",
    "OOM_STAGE_KEY",
    "STOPPED_EARLY_KEY",
    "TRAINED_KEY",
    "TRAIN_BATCH_SIZE_KEY",
    "OOMAwareOptunaSearch",
    "OOMStage",
    "TrialEnd",
    "end_state",
    "is_oom_result",
    "oom_result",
    "oom_user_attrs",
    "worst_value",
]

OOMStage = Literal["tuner", "train", "validation", "test"]
"""Where a trial ran out of memory: the batch-size tuner, training, validation or test."""
OOM_STAGES: tuple[OOMStage, ...] = get_args(OOMStage)

# The values of `search_spaces.Direction`. Not imported: that package pulls in torch through the
# trainables, and every Ray worker running a trainable that uses `oom_result` imports this module.
_DIRECTIONS: tuple[Direction, ...] = ("max", "min")

OOM_KEY = "oom"
# False in each epoch's result, True in the last result of a trial that trained every epoch
# (`hpo.trainable.results`): a trial that ended cleanly on a False was stopped by the scheduler
# (ASHA) after an epoch. A trainable that never reports it ends complete.
TRAINED_KEY = "trained_to_end"
STOPPED_EARLY_KEY = "stopped_early"
OOM_STAGE_KEY = "oom_stage"
TRAIN_BATCH_SIZE_KEY = "train_batch_size"
EVAL_BATCH_SIZE_KEY = "eval_batch_size"


def worst_value(direction: Direction) -> float:
    """The value no real result can be worse than: -inf when maximising, +inf when minimising.

    Args:
        direction: `max` or `min`, Ray Tune's `mode` of the metric.

    Returns:
        The worst value for `direction`.

    Raises:
        ValueError: `direction` is neither `max` nor `min`.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(_DIRECTIONS)}, got {direction=}")
    return -math.inf if direction == "max" else math.inf


def _check_batch_size(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    # bool is an int, and numpy integers are not; both are mistakes worth naming here, because
    # Optuna's storage must serialise the value as a user attribute.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    return value


def oom_result(
    metric: str,
    direction: Direction,
    *,
    stage: OOMStage,
    train_batch_size: int | None,
    eval_batch_size: int | None,
    last_value: float | None = None,
) -> dict[str, Any]:
    """The last result a trainable reports when its trial runs out of memory, before returning.

    The result carries `metric` so that Ray's metric check accepts it; `OOMAwareOptunaSearch`
    never records that value in Optuna. Ray keeps it as the trial's last result, so read `oom`
    before ranking Ray's results (`ResultGrid.get_best_result` does not know about it).

    Args:
        metric: The metric the study optimises (Ray's `metric`, e.g. `val_f1`).
        direction: `max` or `min`, Ray's `mode` for `metric`.
        stage: Where the memory ran out (one of `OOM_STAGES`).
        train_batch_size: The train batch size the trial last tried, or None if it had none yet.
        eval_batch_size: The evaluation batch size the trial last tried, or None.
        last_value: The last value of `metric` the trial reported, or None (the default) to
            report the worst value for `direction` (see `worst_value`).

    Returns:
        A new flat dict: `metric`, `oom` (True), `oom_stage`, `train_batch_size`,
        `eval_batch_size`.

    Raises:
        ValueError: An empty `metric`, an unknown `direction` or `stage`, or a batch size that
            is not a positive int or None.
    """
    if not metric:
        raise ValueError(f"metric must be a non-empty metric name, got {metric=}")
    if stage not in OOM_STAGES:
        raise ValueError(f"stage must be one of {', '.join(OOM_STAGES)}, got {stage=}")
    value = worst_value(direction) if last_value is None else float(last_value)
    return {
        metric: value,
        OOM_KEY: True,
        OOM_STAGE_KEY: stage,
        TRAIN_BATCH_SIZE_KEY: _check_batch_size(TRAIN_BATCH_SIZE_KEY, train_batch_size),
        EVAL_BATCH_SIZE_KEY: _check_batch_size(EVAL_BATCH_SIZE_KEY, eval_batch_size),
    }


def is_oom_result(result: Mapping[str, Any] | None) -> bool:
    """Whether `result` (a Ray result, flat or not; None for none) reports an out-of-memory end."""
    return bool(result and result.get(OOM_KEY, False))


TrialEnd = Literal["complete", "pruned-oom", "stopped-early", "failed"]


def end_state(result: Mapping[str, Any] | None, *, error: bool) -> TrialEnd:
    """How a trial that ended, with `result` as its last result, ended: `failed` (it raised),
    `pruned-oom`, `stopped-early` (the scheduler stopped it after an epoch: no test metrics, no
    model) or `complete` (it trained every epoch)."""
    if error:
        return "failed"
    if is_oom_result(result):
        return "pruned-oom"
    return "stopped-early" if result and result.get(TRAINED_KEY) is False else "complete"


def oom_user_attrs(result: Mapping[str, Any]) -> dict[str, Any]:
    """The Optuna user attributes of a trial whose last result is `result` (see `oom_result`).

    Args:
        result: An out-of-memory result; the batch sizes and stage may be missing (None then).

    Returns:
        A new dict: `oom` (True), `oom_stage`, `train_batch_size`, `eval_batch_size`.
    """
    return {
        OOM_KEY: True,
        OOM_STAGE_KEY: result.get(OOM_STAGE_KEY),
        TRAIN_BATCH_SIZE_KEY: result.get(TRAIN_BATCH_SIZE_KEY),
        EVAL_BATCH_SIZE_KEY: result.get(EVAL_BATCH_SIZE_KEY),
    }


class OOMAwareOptunaSearch(OptunaSearch):
    """Ray's `OptunaSearch` that tells Optuna PRUNED for a trial that ran out of memory.

    Takes `OptunaSearch`'s arguments unchanged (`space`, `metric`, `mode`, `sampler`, `storage`,
    `study_name`, `seed`, ...), and saves and restores like it. A trial whose last result is an
    `oom_result` is told PRUNED, with user attributes from `oom_user_attrs`; its intermediate
    values are the ones it reported before. Every other trial is left to `OptunaSearch`, except
    that a trial ending in an error is always FAIL, even if it reported the metric before.

    Example:
        >>> import optuna
        >>> searcher = OOMAwareOptunaSearch(
        ...     lambda trial: {"batch_size": trial.suggest_int("batch_size", 8, 256, log=True)},
        ...     metric="val_f1",
        ...     mode="max",
        ...     seed=0,
        ... )
        >>> config = searcher.suggest("trial_1")
        >>> searcher.on_trial_result("trial_1", {"val_f1": 0.5, "training_iteration": 1})
        >>> last = oom_result(
        ...     "val_f1", "max", stage="validation", train_batch_size=128, eval_batch_size=256
        ... )
        >>> searcher.on_trial_complete("trial_1", result={**last, "training_iteration": 2})
        >>> [trial] = searcher._ot_study.trials
        >>> trial.state.name, trial.intermediate_values, trial.user_attrs["oom_stage"]
        ('PRUNED', {1: 0.5}, 'validation')
    """

    def _stored(self, trial_id: str) -> optuna.trial.FrozenTrial | None:
        """The trial's Optuna trial as the storage holds it, or None before `suggest`."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            return None
        study = cast(optuna.Study, self._ot_study)
        return study._storage.get_trial(ot_trial._trial_id)

    def _finished_in_storage(self, trial_id: str) -> bool:
        """Whether the trial's Optuna trial has already ended in the storage.

        After `Tuner.restore`, Ray runs again a trial its last saved state had as running,
        though it may have finished (and been told to Optuna) before the driver died.
        """
        stored = self._stored(trial_id)
        return stored is not None and stored.state.is_finished()

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Record `result`'s metric as an intermediate value, unless it is an OOM stand-in or
        its step is recorded already (a trial run again after `Tuner.restore` reports its
        epochs again; Optuna would warn about each, over several lines)."""
        if is_oom_result(result):
            return
        stored = self._stored(trial_id)
        if stored is not None and (
            stored.state.is_finished()
            or result.get(TRAINING_ITERATION) in stored.intermediate_values
        ):
            return
        super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Tell Optuna how the trial ended: PRUNED if out of memory or stopped early by the
        scheduler, else as `OptunaSearch` does.

        Args:
            trial_id: Ray's trial id.
            result: The trial's last result (flat), or None if it has none.
            error: Whether the trial raised; it is FAIL then, whatever it reported before.
        """
        if self._finished_in_storage(trial_id):
            self._completed_trials.add(trial_id)
            return
        if error:
            # OptunaSearch tells COMPLETE whenever the metric is in `result`, error or not.
            super().on_trial_complete(trial_id, result=None, error=True)
            return
        state = end_state(result, error=False)
        if result is None or state == "complete" or trial_id in self._completed_trials:
            super().on_trial_complete(trial_id, result=result, error=error)
            return
        ot_trial = self._ot_trials[trial_id]
        if state == "pruned-oom":
            for key, value in oom_user_attrs(result).items():
                ot_trial.set_user_attr(key, value)
        else:  # stopped by the scheduler after an epoch: what Optuna calls pruned
            ot_trial.set_user_attr(STOPPED_EARLY_KEY, True)
            # Ray hands the result it stopped the trial on here, not to `on_trial_result`: it
            # is the trial's last epoch, and the pruned trial's value.
            metric, step = self._metric, result.get(TRAINING_ITERATION)
            value = result.get(metric) if isinstance(metric, str) else None
            if isinstance(value, int | float) and math.isfinite(value) and step is not None:
                ot_trial.report(float(value), int(step))
        # Optuna takes the last intermediate value, if any, as a PRUNED trial's value.
        # A trial id is only known once `suggest` has asked the study, so the study is set up.
        study = cast(optuna.Study, self._ot_study)
        study.tell(ot_trial, state=TrialState.PRUNED, skip_if_finished=True)
        self._completed_trials.add(trial_id)
