"""The range of one searched parameter: integers or floats, on a linear or a log scale."""

from __future__ import annotations

import math
from dataclasses import dataclass

from optuna.trial import BaseTrial

from search_spaces._values import is_int, is_real
from trainables.errors import UserError

__all__ = ["FloatRange", "IntRange"]


@dataclass(frozen=True)
class IntRange:
    """The integers `low..high`, both included, sampled uniformly or on a log scale.

    A range checks its own shape with `check`; what its bounds mean (a batch size is >= 1) is
    checked by the search space that holds it, which knows the field's name.

    Args:
        low: The smallest value.
        high: The largest value (>= `low`; equal to it for a single value).
        log: Whether to sample on a log scale (needs `low` >= 1); default False.

    Example:
        >>> IntRange(8, 8192, log=True).middle
        256
        >>> IntRange(1, 4).contains(4), IntRange(1, 4).contains(5)
        (True, False)
    """

    low: int
    high: int
    log: bool = False

    def __str__(self) -> str:
        """As `--set` writes it: `16..1024:log`, or `0.3..1.0` on a linear scale."""
        return f"{self.low}..{self.high}" + (":log" if self.log else "")

    @property
    def middle(self) -> int:
        """The value in the middle: the geometric mean on a log scale, else the arithmetic one."""
        if self.log:
            return min(self.high, max(self.low, round(math.sqrt(self.low * self.high))))
        return (self.low + self.high) // 2

    def contains(self, value: object) -> bool:
        """Whether `value` is an integer (not a bool) in `low..high`."""
        return is_int(value) and self.low <= value <= self.high  # type: ignore[operator]

    def capped(self, maximum: int) -> IntRange:
        """This range with `high` lowered to `maximum` where it is above it."""
        return IntRange(self.low, min(self.high, maximum), log=self.log)

    def suggest(self, trial: BaseTrial, name: str) -> int:
        """Ask `trial` for the integer parameter `name` in this range."""
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def check(self, where: str, *, minimum: int | None = None) -> None:
        """Raise `UserError` unless the bounds are integers with `minimum <= low <= high`.

        Args:
            where: What the range is, for messages, e.g. `search space 'kd': field batch_size`.
            minimum: The smallest `low` allowed, or None for no bound.

        Raises:
            UserError: Naming `where`, the bound that is wrong and how to fix it.
        """
        if not (is_int(self.low) and is_int(self.high)) or not isinstance(self.log, bool):
            raise UserError(
                f"{where}: low and high must be integers and log a bool, got {self!r};"
                " write e.g. IntRange(8, 1024, log=True)"
            )
        _check_order(where, self)
        if minimum is not None and self.low < minimum:
            raise UserError(f"{where}: low must be >= {minimum}, got {self!r}; raise low")
        if self.log and self.low < 1:
            raise UserError(
                f"{where}: a log-scaled range needs low >= 1, got {self!r}; raise low or set"
                " log=False"
            )


@dataclass(frozen=True)
class FloatRange:
    """The real numbers from `low` to `high`, both included, sampled uniformly or on a log scale.

    Args:
        low: The smallest value (finite).
        high: The largest value (finite, >= `low`; equal to it for a single value).
        log: Whether to sample on a log scale (needs `low` > 0); default False.

    Example:
        >>> FloatRange(1e-4, 1e-2, log=True).middle
        0.001
        >>> FloatRange(0.3, 1.0).middle
        0.65
    """

    low: float
    high: float
    log: bool = False

    def __str__(self) -> str:
        """As `--set` writes it: `16..1024:log`, or `0.3..1.0` on a linear scale."""
        return f"{self.low}..{self.high}" + (":log" if self.log else "")

    @property
    def middle(self) -> float:
        """The value in the middle: the geometric mean on a log scale, else the arithmetic one."""
        if self.log:
            middle = math.exp((math.log(self.low) + math.log(self.high)) / 2)
            # A round number when one is within rounding error: 0.001, not 0.0009999999999999998.
            middle = float(f"{middle:.12g}")
        else:
            middle = (self.low + self.high) / 2
        return min(self.high, max(self.low, middle))

    def contains(self, value: object) -> bool:
        """Whether `value` is a real number (not a bool) from `low` to `high`."""
        return is_real(value) and self.low <= value <= self.high  # type: ignore[operator]

    def suggest(self, trial: BaseTrial, name: str) -> float:
        """Ask `trial` for the float parameter `name` in this range."""
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def check(
        self,
        where: str,
        *,
        above: float | None = None,
        maximum: float | None = None,
    ) -> None:
        """Raise `UserError` unless the bounds are finite with `above < low <= high <= maximum`.

        Args:
            where: What the range is, for messages, e.g. `search space 'kd': field learning_rate`.
            above: A bound `low` must be strictly above, or None for none.
            maximum: The largest `high` allowed, or None for no bound.

        Raises:
            UserError: Naming `where`, the bound that is wrong and how to fix it.
        """
        if not (is_real(self.low) and is_real(self.high)) or not isinstance(self.log, bool):
            raise UserError(
                f"{where}: low and high must be numbers and log a bool, got {self!r};"
                " write e.g. FloatRange(0.3, 1.0)"
            )
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise UserError(f"{where}: low and high must be finite, got {self!r}")
        _check_order(where, self)
        if above is not None and not self.low > above:
            raise UserError(f"{where}: low must be > {above}, got {self!r}; raise low")
        if maximum is not None and self.high > maximum:
            raise UserError(f"{where}: high must be <= {maximum}, got {self!r}; lower high")
        if self.log and not self.low > 0:
            raise UserError(
                f"{where}: a log-scaled range needs low > 0, got {self!r}; raise low or set"
                " log=False"
            )


def _check_order(where: str, bounds: IntRange | FloatRange) -> None:
    if bounds.low > bounds.high:
        raise UserError(
            f"{where}: the range is empty (low > high), got {bounds!r};"
            " swap the bounds so that low <= high"
        )
