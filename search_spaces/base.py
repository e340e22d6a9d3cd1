"""`SearchSpace`: what one study searches and fixes, as data; every space is an instance of it.

`suggest(trial)` is an Optuna define-by-run function, usable as Ray's `OptunaSearch(space=...)`:
it asks the trial for every searched parameter (a schedule type's own parameters only when that
type is chosen) and returns the fixed ones as constants, which Ray merges over the values it
captured from the `suggest_*` calls. The trial's flat dict has the keys of
`search_spaces.settings`: `FIXED_KEYS`, `SEARCHED_KEYS`, and `schedule_<field>` for the chosen
schedule type's fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna.trial import BaseTrial

from search_spaces.choices import (
    EPOCH_COUNTING_KEYS,
    RAMP_KEYS,
    RAMP_SCHEDULE_TYPES,
    SEARCHABLE_SCHEDULE_TYPES,
    STEP_KEYS,
    Direction,
    SearchableScheduleType,
)
from search_spaces.ranges import FloatRange, IntRange
from search_spaces.settings import FIXED_KEYS, SCHEDULE_PREFIX, TrialSettings
from search_spaces.validation import validate_space
from trainables.errors import UserError
from trainables.models import ModelSize
from trainables.training import Mode

__all__ = ["SearchSpace"]

_DEFAULT_BATCH_SIZE = IntRange(8, 8192, log=True)
_DEFAULT_EVAL_MULTIPLIER = IntRange(1, 4)
_DEFAULT_SAFETY_FACTOR = FloatRange(0.3, 1.0)
_DEFAULT_LEARNING_RATE = FloatRange(1e-4, 1e-2, log=True)
_DEFAULT_SCHEDULE_STEP_SIZE = IntRange(1, 10)
_DEFAULT_SCHEDULE_GAMMA = IntRange(2, 4)
_DEFAULT_SCHEDULE_MAX_BATCH_SIZE = IntRange(64, 8192, log=True)
_DEFAULT_SCHEDULE_FINAL_BATCH_SIZE = IntRange(16, 8192, log=True)
_DEFAULT_SCHEDULE_NUM_EPOCHS = IntRange(1, 10)


@dataclass(frozen=True)
class SearchSpace:
    """A study's search space: searched ranges, fixed settings, and the metric to optimise.

    Each field named like a trial parameter (`batch_size`, `schedule_gamma`, ...) is the range
    of that parameter. The ranges that count epochs (`schedule_step_size`,
    `schedule_num_epochs`) are capped at `epochs` when searched, so a shorter run needs no new
    ranges. The space is validated at construction (see `validate`).

    Args:
        name: The name the registry knows the space by (`--space NAME`).
        mode: The training mode: normal, autoencoder, curriculum, kd or fusion.
        size: The model size, `teacher` or `student` (kd trains a student); default teacher.
        epochs: Training epochs of every trial (>= 1); default 5 (on a GPU cluster, raise it
            with `--epochs`).
        dataset: The dataset name; default `synthetic` (the embedded synthetic traffic).
        window: CAN messages per graph (>= 2); default 100.
        metric: The validation metric to optimise; default `val_f1`.
        direction: `max` or `min`, Ray Tune's `mode` for `metric`; default max.
        batch_size: Train batch size asked for; default 8..8192, log scale.
        eval_multiplier: Evaluation batch size per train batch size; default 1..4.
        safety_factor: Fraction of the largest batch size that fits to train with, within
            (0, 1]; default 0.3..1.0.
        learning_rate: Adam learning rate; default 1e-4..1e-2, log scale.
        schedule_type: The batch-size schedule types to choose from (of
            `SEARCHABLE_SCHEDULE_TYPES`); default all of them.
        schedule_step_size: step: epochs between steps; default 1..10 (capped at `epochs`).
        schedule_gamma: step: factor per step (>= 2); default 2..4.
        schedule_max_batch_size: step: a cap of the schedule's own, or None for no cap and no
            such parameter; default 64..8192, log scale.
        schedule_final_batch_size: linear, exponential, cosine: the size ramped to; default
            16..8192, log scale.
        schedule_num_epochs: linear, exponential, cosine: epochs of the ramp; default 1..10
            (capped at `epochs`).

    Example:
        >>> import optuna
        >>> space = SearchSpace(name="demo", mode="normal", epochs=3)
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> trial = study.ask()
        >>> space.suggest(trial)
        {'mode': 'normal', 'size': 'teacher', 'epochs': 3, 'dataset': 'synthetic', 'window': 100}
        >>> settings = space.trial_settings({**trial.params, **space.fixed_params()})
        >>> 8 <= settings.batch_size <= 8192, settings.epochs
        (True, 3)
    """

    name: str
    mode: Mode
    size: ModelSize = "teacher"
    epochs: int = 5
    dataset: str = "synthetic"
    window: int = 100
    metric: str = "val_f1"
    direction: Direction = "max"
    batch_size: IntRange = _DEFAULT_BATCH_SIZE
    eval_multiplier: IntRange = _DEFAULT_EVAL_MULTIPLIER
    safety_factor: FloatRange = _DEFAULT_SAFETY_FACTOR
    learning_rate: FloatRange = _DEFAULT_LEARNING_RATE
    schedule_type: tuple[SearchableScheduleType, ...] = SEARCHABLE_SCHEDULE_TYPES
    schedule_step_size: IntRange = _DEFAULT_SCHEDULE_STEP_SIZE
    schedule_gamma: IntRange = _DEFAULT_SCHEDULE_GAMMA
    schedule_max_batch_size: IntRange | None = _DEFAULT_SCHEDULE_MAX_BATCH_SIZE
    schedule_final_batch_size: IntRange = _DEFAULT_SCHEDULE_FINAL_BATCH_SIZE
    schedule_num_epochs: IntRange = _DEFAULT_SCHEDULE_NUM_EPOCHS

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field, before anything starts; the constructor calls it too.

        Raises:
            UserError: Naming the space, the field, what is wrong and how to fix it.
        """
        validate_space(self)

    def suggest(self, trial: BaseTrial) -> dict[str, Any]:
        """Ask `trial` for every searched parameter; return the fixed ones as constants.

        This is an Optuna define-by-run function: pass it as Ray's
        `OptunaSearch(space=space.suggest, metric=space.metric, mode=space.direction)`, which
        merges the returned constants over the values it captured. Without Ray, the trial's
        whole dict is `{**trial.params, **space.suggest(trial)}` (see `sample`).

        Args:
            trial: The Optuna trial (or Ray's wrapper of one).

        Returns:
            The fixed parameters (`FIXED_KEYS`), a new dict each call.
        """
        self.batch_size.suggest(trial, "batch_size")
        self.eval_multiplier.suggest(trial, "eval_multiplier")
        self.safety_factor.suggest(trial, "safety_factor")
        self.learning_rate.suggest(trial, "learning_rate")
        schedule_type = trial.suggest_categorical("schedule_type", self.schedule_type)
        for key, bounds in self.schedule_ranges(schedule_type).items():
            bounds.suggest(trial, key)
        return self.fixed_params()

    def sample(self, trial: BaseTrial) -> dict[str, Any]:
        """Ask `trial` for a whole trial's flat parameter dict, as Ray would hand it on."""
        fixed = self.suggest(trial)
        return {**trial.params, **fixed}

    def fixed_params(self) -> dict[str, Any]:
        """The parameters this space fixes, the same in every trial (`FIXED_KEYS`)."""
        return {key: getattr(self, key) for key in FIXED_KEYS}

    def trial_settings(self, params: Mapping[str, Any]) -> TrialSettings:
        """The typed settings of a trial of this space, from the flat dict Ray hands a trainable.

        Args:
            params: The trial's parameters (see `TrialSettings.from_params`).

        Returns:
            The settings.

        Raises:
            UserError: A key is missing or unknown, a fixed value is not this space's, or a
                searched value is outside its range or conditional on another schedule type.
        """
        where = f"search space {self.name!r}: trial parameters"
        settings = TrialSettings.from_params(params, option=where)
        for key, value in self.fixed_params().items():
            if params[key] != value:
                raise UserError(
                    f"{where}: {key} is fixed to {value!r} in this space, got {params[key]!r};"
                    " use the space the trial was suggested by, or with_overrides"
                )
        schedule_type = params["schedule_type"]
        if schedule_type not in self.schedule_type:
            raise UserError(
                f"{where}: schedule_type {schedule_type!r} is not searched here; choose one of"
                f" {', '.join(self.schedule_type)}"
            )
        ranges: dict[str, IntRange | FloatRange] = {
            "batch_size": self.batch_size,
            "eval_multiplier": self.eval_multiplier,
            "safety_factor": self.safety_factor,
            "learning_rate": self.learning_rate,
            **self.schedule_ranges(schedule_type),
        }
        for key, bounds in ranges.items():
            if key not in params:
                raise UserError(f"{where}: missing {key} (searched with {schedule_type!r})")
            if not bounds.contains(params[key]):
                raise UserError(f"{where}: {key}={params[key]!r} is outside its range {bounds!r}")
        extra = {key for key in params if key.startswith(SCHEDULE_PREFIX)} - {
            "schedule_type",
            *ranges,
        }
        if extra:
            raise UserError(
                f"{where}: {', '.join(sorted(extra))} not searched with schedule_type"
                f" {schedule_type!r}; leave them out"
            )
        return settings

    def warm_start_params(self, safety_factor: float) -> dict[str, Any]:
        """A complete, valid first trial: the given safety factor at work, middle-of-range values
        for the rest.

        For Ray's `OptunaSearch(points_to_evaluate=[...])`, which enqueues it in the Optuna
        study: each suggested parameter takes its value from here. The train batch size asked
        for is the top of its range, so that the tuned maximum times the factor sets the batch
        (a trial keeps a smaller size it asks for, and the factor would then do nothing). The
        schedule is `none` when that is searched (a constant batch size), else the first type
        with middle values.

        Args:
            safety_factor: The factor to try first, e.g. one recommended from earlier studies;
                within this space's `safety_factor` range.

        Returns:
            The trial's flat parameter dict, fixed parameters included.

        Raises:
            UserError: `safety_factor` is outside this space's range.
        """
        if not self.safety_factor.contains(safety_factor):
            bounds = self.safety_factor
            raise UserError(
                f"search space {self.name!r}: warm-start safety factor must be within the"
                f" space's range {bounds.low}..{bounds.high}, got {safety_factor!r}; pick one in"
                " it, or widen the range with space.with_overrides(safety_factor=FloatRange(...))"
            )
        schedule_type = "none" if "none" in self.schedule_type else self.schedule_type[0]
        params: dict[str, Any] = {
            **self.fixed_params(),
            "batch_size": self.batch_size.high,
            "eval_multiplier": self.eval_multiplier.middle,
            "safety_factor": float(safety_factor),
            "learning_rate": self.learning_rate.middle,
            "schedule_type": schedule_type,
            **{key: r.middle for key, r in self.schedule_ranges(schedule_type).items()},
        }
        self.trial_settings(params)
        return params

    def with_overrides(self, **changes: Any) -> SearchSpace:
        """A copy of this space with some fields changed, validated (e.g. the CLI's `--epochs`).

        Args:
            **changes: Field names and their new values, e.g. `epochs=3` or
                `batch_size=IntRange(8, 512, log=True)`.

        Returns:
            The new space.

        Raises:
            UserError: An unknown field, or a new value that makes the space invalid.
        """
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise UserError(
                f"search space {self.name!r}: no field {', '.join(unknown)}; the fields are"
                f" {', '.join(names)}"
            )
        return dataclasses.replace(self, **changes)

    def smoke(self) -> SearchSpace:
        """A tiny variant for `--smoke-test`: 2 epochs and batch sizes of at most 64."""
        return self.with_overrides(
            epochs=2,
            batch_size=IntRange(8, 32, log=True),
            schedule_max_batch_size=(
                None if self.schedule_max_batch_size is None else IntRange(16, 64, log=True)
            ),
            schedule_final_batch_size=IntRange(8, 64, log=True),
        )

    def schedule_ranges(self, schedule_type: str) -> dict[str, IntRange]:
        """The ranges of `schedule_type`'s own parameters by key, those counting epochs capped.

        Example:
            >>> SearchSpace(name="demo", mode="normal", epochs=4).schedule_ranges("linear")
            {'schedule_final_batch_size': IntRange(low=16, high=8192, log=True), \
'schedule_num_epochs': IntRange(low=1, high=4, log=False)}
        """
        if schedule_type == "step":
            keys: tuple[str, ...] = STEP_KEYS
        elif schedule_type in RAMP_SCHEDULE_TYPES:
            keys = RAMP_KEYS
        else:
            keys = ()
        ranges = {key: getattr(self, key) for key in keys if getattr(self, key) is not None}
        return {
            key: bounds.capped(self.epochs) if key in EPOCH_COUNTING_KEYS else bounds
            for key, bounds in ranges.items()
        }
