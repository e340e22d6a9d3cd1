"""`TrialSettings`: the typed form of one trial's flat parameter dict, and the dict's keys.

Ray Tune hands a trainable a flat dict of plain values; `TrialSettings.from_params` turns it into
typed settings (the schedule a `BatchSizeSchedule`) and `to_params` flattens them back, exactly.
The schedule's fields are the keys `schedule_<field>`, e.g. `schedule_type`, `schedule_gamma`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from search_spaces._values import is_int, is_real
from trainables.batching.schedules import (
    BatchSizeSchedule,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    PiecewiseSchedule,
    StepSchedule,
    check_milestones_reached,
    schedule_from_dict,
)
from trainables.errors import UserError
from trainables.models import MODEL_SIZES, ModelSize
from trainables.training import MODES, Mode

__all__ = ["FIXED_KEYS", "SCHEDULE_PREFIX", "SEARCHED_KEYS", "TrialSettings"]

FIXED_KEYS: tuple[str, ...] = ("mode", "size", "epochs", "dataset", "window")
"""Keys a search space fixes: the same in every trial of a study."""
SEARCHED_KEYS: tuple[str, ...] = (
    "batch_size",
    "eval_multiplier",
    "safety_factor",
    "learning_rate",
    "schedule_type",
)
"""Keys every trial has a searched value for; the schedule type's own fields come on top."""
SCHEDULE_PREFIX = "schedule_"
"""Prefix of the keys that hold the schedule's fields (`schedule_type`, `schedule_gamma`, ...)."""

_SCHEDULE_TYPES = (
    ConstantSchedule,
    StepSchedule,
    LinearSchedule,
    ExponentialSchedule,
    CosineSchedule,
    PiecewiseSchedule,
)


@dataclass(frozen=True)
class TrialSettings:
    """What one trial trains with: the fixed settings of its space and its searched values.

    Args:
        mode: The training mode (`normal`, `autoencoder`, `curriculum`, `kd`, `fusion`).
        size: The model size, `teacher` or `student` (kd trains a student).
        epochs: Training epochs (>= 1).
        learning_rate: Adam learning rate (> 0).
        batch_size: The train batch size asked for (>= 1), before the safety factor.
        eval_multiplier: Evaluation batch size per train batch size (>= 1).
        safety_factor: The fraction of the largest batch size that fits to train with, in (0, 1].
        schedule: How the train batch size changes from epoch to epoch; default constant.
        dataset: The dataset name; default `synthetic` (the embedded synthetic traffic).
        window: CAN messages per graph (>= 2); default 100.

    Example:
        >>> settings = TrialSettings(
        ...     mode="normal", size="teacher", epochs=2, learning_rate=1e-3, batch_size=64,
        ...     eval_multiplier=2, safety_factor=0.8,
        ...     schedule=StepSchedule(step_size=1, gamma=2),
        ... )
        >>> params = settings.to_params()
        >>> params["schedule_type"], params["schedule_gamma"]
        ('step', 2)
        >>> TrialSettings.from_params(params) == settings
        True
    """

    mode: Mode
    size: ModelSize
    epochs: int
    learning_rate: float
    batch_size: int
    eval_multiplier: int
    safety_factor: float
    schedule: BatchSizeSchedule = field(default_factory=ConstantSchedule)
    dataset: str = "synthetic"
    window: int = 100

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            _fail("mode", self.mode, f"one of {', '.join(MODES)}")
        if self.size not in MODEL_SIZES:
            _fail("size", self.size, f"one of {', '.join(MODEL_SIZES)}")
        if self.mode == "kd" and self.size != "student":
            _fail("size", self.size, "'student' with mode 'kd' (kd trains a student)")
        if not (isinstance(self.dataset, str) and self.dataset):
            _fail("dataset", self.dataset, "a non-empty dataset name, e.g. 'synthetic'")
        for key, minimum in (
            ("epochs", 1),
            ("window", 2),
            ("batch_size", 1),
            ("eval_multiplier", 1),
        ):
            value = getattr(self, key)
            if not is_int(value) or value < minimum:
                _fail(key, value, f"an integer >= {minimum}")
        learning_rate = self.learning_rate
        if not (is_real(learning_rate) and math.isfinite(learning_rate) and learning_rate > 0):
            _fail("learning_rate", learning_rate, "a finite number > 0")
        if not (is_real(self.safety_factor) and 0.0 < self.safety_factor <= 1.0):
            _fail("safety_factor", self.safety_factor, "a number in (0, 1], e.g. 0.8")
        if not isinstance(self.schedule, _SCHEDULE_TYPES):
            _fail("schedule", self.schedule, "a schedule; build one with schedule_from_dict")
        # Not searched (milestones are set by hand), but a trial can be given one.
        check_milestones_reached(
            self.schedule, self.epochs, option="schedule", epochs_option="epochs"
        )

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, option: str = "trial parameters"
    ) -> TrialSettings:
        """The settings of a flat parameter dict, as Ray Tune hands it to a trainable.

        Args:
            params: Every key of `FIXED_KEYS` and `SEARCHED_KEYS`, and `schedule_<field>` for
                the fields of the schedule type (e.g. `schedule_step_size`); nothing else.
            option: Where the dict came from, for error messages; default `trial parameters`.

        Returns:
            The settings; `to_params()` gives `params` back.

        Raises:
            UserError: A key is missing or unknown, or a value is wrong (named in the message).
        """
        missing = [key for key in (*FIXED_KEYS, *SEARCHED_KEYS) if key not in params]
        unknown = [
            key
            for key in params
            if key not in FIXED_KEYS
            and key not in SEARCHED_KEYS
            and not key.startswith(SCHEDULE_PREFIX)
        ]
        if missing or unknown:
            problems = [f"missing {', '.join(missing)}"] if missing else []
            problems += [f"unknown {', '.join(unknown)}"] if unknown else []
            raise UserError(
                f"{option}: {'; '.join(problems)}; a trial's parameters are exactly"
                f" {', '.join((*FIXED_KEYS, *SEARCHED_KEYS))} and schedule_<field> for the"
                " schedule type's fields; give other settings to the trainable separately"
            )
        schedule = schedule_from_dict(
            {
                key.removeprefix(SCHEDULE_PREFIX): value
                for key, value in params.items()
                if key.startswith(SCHEDULE_PREFIX)
            },
            option=f"{option}: {SCHEDULE_PREFIX}*",
        )
        learning_rate, safety_factor = params["learning_rate"], params["safety_factor"]
        try:
            return cls(
                mode=params["mode"],
                size=params["size"],
                epochs=params["epochs"],
                dataset=params["dataset"],
                window=params["window"],
                # An integer is a valid float here (`1` for 1.0); bools are caught by the checks.
                learning_rate=float(learning_rate) if is_int(learning_rate) else learning_rate,
                batch_size=params["batch_size"],
                eval_multiplier=params["eval_multiplier"],
                safety_factor=float(safety_factor) if is_int(safety_factor) else safety_factor,
                schedule=schedule,
            )
        except UserError as exc:
            raise UserError(f"{option}: {exc}") from None

    def to_params(self) -> dict[str, Any]:
        """The flat parameter dict of these settings (see `from_params`): plain values only.

        The schedule contributes `schedule_type` and every field that differs from its default
        (a step schedule without `max_batch_size` has no `schedule_max_batch_size`).
        """
        schedule = self.schedule.model_dump(exclude_defaults=True)
        schedule["type"] = self.schedule.type
        return {
            "mode": self.mode,
            "size": self.size,
            "epochs": self.epochs,
            "dataset": self.dataset,
            "window": self.window,
            "batch_size": self.batch_size,
            "eval_multiplier": self.eval_multiplier,
            "safety_factor": self.safety_factor,
            "learning_rate": self.learning_rate,
            **{f"{SCHEDULE_PREFIX}{name}": value for name, value in schedule.items()},
        }


def _fail(key: str, value: object, expected: str) -> NoReturn:
    raise UserError(f"{key} must be {expected}, got {value!r}")
