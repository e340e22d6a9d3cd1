"""The schedule kinds: a frozen pydantic model per `type`, and their union `BatchSizeSchedule`."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from trainables.batching.lr_scaling import LrScaling, scale_learning_rate
from trainables.errors import UserError

__all__ = [
    "BatchSizeSchedule",
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "PiecewiseSchedule",
    "StepSchedule",
    "check_milestones_reached",
]


def _not_a_bool(value: object) -> object:
    if isinstance(value, bool):  # pydantic's lax mode would take true for 1
        raise ValueError("must be an integer, not a boolean")
    return value


# An integer field that does not take true or false for 1 or 0.
Integer = Annotated[int, BeforeValidator(_not_a_bool)]


class _Schedule(BaseModel):
    """Fields and methods every schedule shares; a variant defines `_uncapped_size`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cap_at_tuned_max: bool = True
    lr_scaling: LrScaling = "none"

    def batch_size_at(self, epoch: int, initial: int, tuned_max: int) -> int:
        """The train batch size for `epoch` (from 0), starting from `initial` at epoch 0.

        Args:
            epoch: The epoch, from 0.
            initial: The applied batch size (>= 1).
            tuned_max: The tuner's largest batch size (>= 1); the cap with `cap_at_tuned_max`.

        Returns:
            The batch size (>= 1).

        Raises:
            ValueError: `epoch` < 0, or a size < 1.
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch=}")
        if initial < 1 or tuned_max < 1:
            raise ValueError(f"batch sizes must be >= 1, got {initial=}, {tuned_max=}")
        cap = tuned_max if self.cap_at_tuned_max else None
        size = self._uncapped_size(epoch, initial, cap=cap)
        return max(1, size if cap is None else min(size, cap))

    def sizes_for_epochs(self, initial: int, num_epochs: int, tuned_max: int) -> list[int]:
        """The batch sizes of epochs 0..num_epochs-1 (see `batch_size_at`)."""
        return [self.batch_size_at(epoch, initial, tuned_max) for epoch in range(num_epochs)]

    def learning_rate_for(self, batch_size: int, *, base_lr: float, base_batch_size: int) -> float:
        """The learning rate for `batch_size` under this schedule's `lr_scaling` rule."""
        return scale_learning_rate(
            base_lr, base_batch_size=base_batch_size, batch_size=batch_size, rule=self.lr_scaling
        )

    def _uncapped_size(self, epoch: int, initial: int, *, cap: int | None) -> int:
        raise NotImplementedError  # pragma: no cover - every variant overrides it


class ConstantSchedule(_Schedule):
    """The same batch size every epoch (`{"type": "none"}`).

    Example:
        >>> ConstantSchedule().sizes_for_epochs(64, 3, tuned_max=256)
        [64, 64, 64]
    """

    type: Literal["none"] = "none"

    def _uncapped_size(self, epoch: int, initial: int, *, cap: int | None) -> int:
        return initial


class StepSchedule(_Schedule):
    """Multiply the batch size by `gamma` every `step_size` epochs, up to `max_batch_size`.

    `bs(epoch) = min(initial * gamma ** (epoch // step_size), max_batch_size)`.

    Args:
        step_size: Epochs between steps (>= 1).
        gamma: The factor per step (an integer >= 2).
        max_batch_size: A cap of its own (> 0), or None.

    Example:
        >>> StepSchedule(step_size=2, gamma=2).sizes_for_epochs(64, 6, tuned_max=200)
        [64, 64, 128, 128, 200, 200]
    """

    type: Literal["step"] = "step"
    step_size: Integer = Field(ge=1)
    gamma: Integer = Field(ge=2)
    max_batch_size: Integer | None = Field(default=None, gt=0)

    def _uncapped_size(self, epoch: int, initial: int, *, cap: int | None) -> int:
        limits = [limit for limit in (cap, self.max_batch_size) if limit is not None]
        limit = min(limits) if limits else None
        size = initial
        for _ in range(epoch // self.step_size):
            if limit is not None and size >= limit:
                break  # stop multiplying once capped: epochs can be many, sizes need not be huge
            size *= self.gamma
        return size if self.max_batch_size is None else min(size, self.max_batch_size)


class _RampSchedule(_Schedule):
    """From `initial` at epoch 0 to `final_batch_size` at epoch `num_epochs`, then constant."""

    final_batch_size: Integer = Field(ge=1)
    num_epochs: Integer = Field(ge=1)

    def _uncapped_size(self, epoch: int, initial: int, *, cap: int | None) -> int:
        if epoch >= self.num_epochs:
            return self.final_batch_size
        return round(self._ramp(epoch / self.num_epochs, initial, self.final_batch_size))

    def _ramp(self, progress: float, start: int, end: int) -> float:
        raise NotImplementedError  # pragma: no cover - every variant overrides it


class LinearSchedule(_RampSchedule):
    """Grow (or shrink) the batch size by the same amount every epoch.

    Example:
        >>> LinearSchedule(final_batch_size=128, num_epochs=4).sizes_for_epochs(64, 6, 512)
        [64, 80, 96, 112, 128, 128]
    """

    type: Literal["linear"] = "linear"

    def _ramp(self, progress: float, start: int, end: int) -> float:
        return start + (end - start) * progress


class ExponentialSchedule(_RampSchedule):
    """Grow (or shrink) the batch size by the same factor every epoch.

    Example:
        >>> ExponentialSchedule(final_batch_size=512, num_epochs=3).sizes_for_epochs(64, 4, 512)
        [64, 128, 256, 512]
    """

    type: Literal["exponential"] = "exponential"

    def _ramp(self, progress: float, start: int, end: int) -> float:
        return start * (end / start) ** progress


class CosineSchedule(_RampSchedule):
    """Move the batch size along half a cosine: slowly at both ends, fastest in the middle.

    Example:
        >>> CosineSchedule(final_batch_size=256, num_epochs=4).sizes_for_epochs(64, 5, 512)
        [64, 92, 160, 228, 256]
    """

    type: Literal["cosine"] = "cosine"

    def _ramp(self, progress: float, start: int, end: int) -> float:
        return end + (start - end) * (1 + math.cos(math.pi * progress)) / 2


class PiecewiseSchedule(_Schedule):
    """Fixed batch sizes from given epochs on: `[[epoch, batch_size], ...]`.

    Before the first milestone the batch size is the initial one.

    Args:
        milestones: `(epoch, batch_size)` pairs, epochs >= 0 in increasing order, sizes >= 1.

    Example:
        >>> PiecewiseSchedule(milestones=[(2, 128), (4, 1024)]).sizes_for_epochs(64, 5, 512)
        [64, 64, 128, 128, 512]
    """

    type: Literal["piecewise"] = "piecewise"
    # At least one, checked below: as `Field(min_length=1)`, a bad item also read "Tuple should
    # have at least 1 item after validation, not 0".
    milestones: tuple[tuple[Integer, Integer], ...]

    @field_validator("milestones")
    @classmethod
    def _check_milestones(
        cls, milestones: tuple[tuple[int, int], ...]
    ) -> tuple[tuple[int, int], ...]:
        if not milestones:
            raise ValueError("at least one [epoch, batch_size] milestone is needed")
        for i, (epoch, batch_size) in enumerate(milestones):
            where = f"milestone {i} [{epoch}, {batch_size}]"
            if epoch < 0:
                raise ValueError(f"{where}: epoch must be >= 0")
            if batch_size < 1:
                raise ValueError(f"{where}: batch size must be >= 1")
            if i > 0 and epoch <= milestones[i - 1][0]:
                problem = (
                    "repeats the epoch of" if epoch == milestones[i - 1][0] else "comes before"
                )
                raise ValueError(
                    f"{where}: {problem} milestone {i - 1} {list(milestones[i - 1])};"
                    " list milestones once each, in increasing epoch order"
                )
        return milestones

    def _uncapped_size(self, epoch: int, initial: int, *, cap: int | None) -> int:
        size = initial
        for start, batch_size in self.milestones:
            if start > epoch:
                break
            size = batch_size
        return size


def check_milestones_reached(
    schedule: _Schedule,
    num_epochs: int,
    *,
    option: str = "--schedule",
    epochs_option: str = "--epochs",
) -> None:
    """A piecewise milestone at or past `num_epochs` is never reached (epochs count from 0, so
    the last is `num_epochs - 1`): an error, not a schedule that silently does less.

    Args:
        schedule: Any schedule; only a `PiecewiseSchedule` has milestones.
        num_epochs: The epochs the run trains (>= 1).
        option: What set the schedule, for the message (default `--schedule`).
        epochs_option: What set `num_epochs`, for the message (default `--epochs`).

    Raises:
        UserError: Naming the first milestone never reached, and both options.

    Example:
        >>> check_milestones_reached(PiecewiseSchedule(milestones=[(4, 128)]), 5)
        >>> check_milestones_reached(PiecewiseSchedule(milestones=[(5, 128)]), 5)
        Traceback (most recent call last):
        ...
        trainables.errors.UserError: --schedule: milestone 0 [5, 128] is never reached: \
--epochs 5 trains epochs 0 to 4 (epochs count from 0); start it before epoch 5, or raise --epochs
    """
    if not isinstance(schedule, PiecewiseSchedule):
        return
    for i, (epoch, batch_size) in enumerate(schedule.milestones):
        if epoch >= num_epochs:
            raise UserError(
                f"{option}: milestone {i} [{epoch}, {batch_size}] is never reached:"
                f" {epochs_option} {num_epochs} trains epochs 0 to {num_epochs - 1} (epochs"
                f" count from 0); start it before epoch {num_epochs}, or raise {epochs_option}"
            )


BatchSizeSchedule = Annotated[
    ConstantSchedule
    | StepSchedule
    | LinearSchedule
    | ExponentialSchedule
    | CosineSchedule
    | PiecewiseSchedule,
    Field(discriminator="type"),
]
