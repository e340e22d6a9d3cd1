"""How the batch-size tuner searches: `TunerSettings`, validated at construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainables.errors import UserError

__all__ = ["TunerMode", "TunerSettings"]

TunerMode = Literal["power", "binsearch"]


@dataclass(frozen=True)
class TunerSettings:
    """How Lightning's batch-size tuner searches.

    Args:
        mode: `binsearch` (double until OOM, then bisect; default) or `power` (double only).
        steps_per_trial: Steps run at each probed size (default 1: the probe serves the
            heaviest batch first, so one step meets the worst case).
        init_val: First size probed (default 2; `find_frontier` starts the eval search at the
            train maximum when that is larger).
        max_trials: Most sizes probed (default 25).
        max_val: Largest size probed (default 65536; also capped at the probe set's size).
        tolerance: The binsearch stops once the gap between the largest size that ran and the
            smallest that ran out of memory is at most this fraction of the former (default
            0.03; 0 bisects down to one graph, as Lightning does).
        aim: In binsearch mode under a budget it can measure, stop Lightning's doubling
            early and replace its bisection by steps aimed at the maximum that the steps' peak
            memory predicts (default True; see `Search._aimed_search`); False searches as
            Lightning does, after trying the whole set.

    Example:
        >>> TunerSettings(mode="power").margin
        0.0
    """

    mode: TunerMode = "binsearch"
    steps_per_trial: int = 1
    init_val: int = 2
    max_trials: int = 25
    max_val: int = 1 << 16
    tolerance: float = 0.03
    aim: bool = True
    margin: float = 0.0  # never a hidden second safety factor

    def __post_init__(self) -> None:
        if self.mode not in ("power", "binsearch"):
            raise UserError(f"--tuner-mode must be power or binsearch, got {self.mode!r}")
        if not 0.0 <= self.tolerance < 1.0:
            raise UserError(f"--tuner-tolerance must be in [0, 1), got {self.tolerance}")
        for name in ("steps_per_trial", "init_val", "max_trials", "max_val"):
            if getattr(self, name) < 1:
                raise UserError(f"tuner {name} must be >= 1, got {getattr(self, name)}")
