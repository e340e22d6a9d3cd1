"""The estimate's arithmetic: plain functions of measured numbers, no measuring here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MARGIN",
    "MEMORY_HEADROOM",
    "LinearFit",
    "TrialWork",
    "fit_line",
    "max_batch_size",
    "slurm_gres",
    "slurm_mem",
    "slurm_time",
    "steps_seconds",
    "study_makespan",
]

DEFAULT_MARGIN = 1.5
MEMORY_HEADROOM = 1.2
_GIB = 1 << 30
_EPS = 1e-9


@dataclass(frozen=True)
class LinearFit:
    """`y = intercept + slope x`: memory or seconds against batch size (see `fit_line`).

    Example:
        >>> LinearFit(intercept=100.0, slope=2.0).at(10)
        120.0
    """

    intercept: float
    slope: float

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x


def fit_line(
    xs: Sequence[float], ys: Sequence[float], *, positive_slope: bool = False
) -> LinearFit:
    """Least-squares line through the points, never below zero at x = 0.

    With one distinct x the line goes through the origin; a negative intercept (noise) becomes
    the least-squares line through the origin. With `positive_slope` (memory: a slope of 0 would
    make every batch fit) a slope <= 0 becomes the steepest line through the origin and a point.

    Raises:
        ValueError: No points, or `xs` and `ys` of different lengths.

    Example:
        >>> fit_line([8, 32, 128], [116.0, 164.0, 356.0])
        LinearFit(intercept=100.0, slope=2.0)
    """
    if not xs or len(xs) != len(ys):
        raise ValueError(f"need as many ys as xs (>= 1), got {len(xs)} and {len(ys)}")
    points = list(zip(xs, ys, strict=True))
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return LinearFit(0.0, max(mean_y, 0.0) / mean_x if mean_x else 0.0)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var
    intercept = mean_y - slope * mean_x
    if positive_slope and slope <= 0:
        return LinearFit(0.0, max(y / x for x, y in points if x > 0))
    if intercept < 0:
        slope = sum(x * y for x, y in points) / sum(x * x for x in xs)
        intercept = 0.0
    return LinearFit(float(intercept), float(max(slope, 0.0)))


def max_batch_size(budget_bytes: int, memory: LinearFit, *, max_graphs: int) -> int:
    """The largest batch whose predicted peak fits the budget, at most `max_graphs` (the tuner
    never answers more than its probe set holds); 0 when not even one graph fits.

    Example:
        >>> max_batch_size(1000, LinearFit(intercept=100.0, slope=2.0), max_graphs=10_000)
        450
    """
    room = budget_bytes - memory.intercept
    if memory.slope <= 0:
        return max_graphs if room >= 0 else 0
    return max(0, min(max_graphs, math.floor(room / memory.slope)))


def steps_seconds(num_graphs: int, batch_size: int, step: LinearFit) -> float:
    """Seconds to run `num_graphs` graphs through `step` in batches of `batch_size`.

    Example:
        >>> steps_seconds(100, 40, LinearFit(intercept=0.5, slope=0.01))
        2.5
    """
    if num_graphs <= 0:
        return 0.0
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    full, rest = divmod(num_graphs, batch_size)
    return full * step.at(batch_size) + (step.at(rest) if rest else 0.0)


@dataclass(frozen=True)
class TrialWork:
    """One trial's work in seconds at the speed of a trial alone: `before_tuner` (data, model,
    budget) and `after_tuner` (training, validation, testing, saving)."""

    before_tuner: float
    after_tuner: float


def study_makespan(
    trials: Sequence[TrialWork],
    *,
    slot_start_seconds: Sequence[float],
    tuner_seconds: float,
    slowdown: float = 1.0,
    cold_seconds: float = 0.0,
    turnover_seconds: float = 0.0,
    fresh_worker_per_trial: bool = False,
) -> float:
    """Seconds from the start of the trials to the end of the last, on concurrent slots.

    Trials take the free slots in order; a slot is free from its start-up on and
    `turnover_seconds` after its last trial. A trial on a fresh worker (a slot's first, or every
    trial with `fresh_worker_per_trial`) has `cold_seconds` more work before the tuner. The
    first trial to finish its `before_tuner` work runs the tuner; trials reaching it before it
    is done wait, idle, for its memo; later ones go on. Work runs at the speed of a trial alone
    over `1 + (slowdown - 1) (n - 1) / (K - 1)` with n of the K slots working.

    Raises:
        ValueError: No trial or no slot.

    Example:
        >>> work = [TrialWork(1.0, 4.0)] * 4
        >>> study_makespan(work, slot_start_seconds=[10.0, 10.0], tuner_seconds=3.0)
        23.0
    """
    if not trials or not slot_start_seconds:
        raise ValueError(f"need >= 1 trial and slot, got {len(trials)} and {slot_start_seconds}")
    num_slots = len(slot_start_seconds)
    free = [float(s) for s in slot_start_seconds]
    is_fresh = [True] * num_slots
    pending = list(trials)
    running: list[list] = []  # [slot, phase, remaining work]; phases: before, tuner, wait, after
    tuner = "new"
    now = last_end = 0.0
    while pending or running:
        for slot in sorted(range(num_slots), key=free.__getitem__):
            if pending and slot not in (r[0] for r in running) and free[slot] <= now + _EPS:
                trial = pending.pop(0)
                cold = cold_seconds if is_fresh[slot] else 0.0
                is_fresh[slot] = fresh_worker_per_trial
                running.append([slot, "before", trial.before_tuner + cold, trial.after_tuner])
        working = [r for r in running if r[1] != "wait"]
        n = len(working)
        speed = 1.0 if n <= 1 else 1.0 + (slowdown - 1.0) * (n - 1) / max(num_slots - 1, 1)
        step = min((r[2] * speed for r in working), default=math.inf)
        busy = {r[0] for r in running}
        if pending:
            step = min([step] + [free[s] - now for s in range(num_slots) if s not in busy])
        if step == math.inf:  # everyone waits on a tuner nobody runs: cannot happen
            raise RuntimeError("trials wait for a tuner that never runs")
        now += max(step, 0.0)
        for r in working:
            r[2] -= step / speed
        for r in list(running):
            if r[1] == "wait" or r[2] > _EPS:
                continue
            if r[1] == "before" and tuner == "new":
                r[1], r[2], tuner = "tuner", tuner_seconds, "running"
            elif r[1] == "before" and tuner == "running":
                r[1] = "wait"
            elif r[1] in ("before", "tuner"):
                if r[1] == "tuner":
                    tuner = "done"
                    for other in running:
                        if other[1] == "wait":
                            other[1], other[2] = "after", other[3]
                r[1], r[2] = "after", r[3]
            else:
                running.remove(r)
                free[r[0]] = now + turnover_seconds
                last_end = max(last_end, now)
    return last_end


def slurm_time(seconds: float, *, margin: float = DEFAULT_MARGIN) -> str:
    """SLURM `--time` for `seconds` of work: times `margin`, rounded up to the minute.

    Example:
        >>> slurm_time(3000), slurm_time(1.0, margin=1.0), slurm_time(30 * 3600, margin=1.0)
        ('01:15:00', '00:01:00', '30:00:00')
    """
    minutes = max(1, math.ceil(seconds * margin / 60 - _EPS))
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def slurm_mem(num_bytes: float, *, headroom: float = MEMORY_HEADROOM) -> str:
    """SLURM `--mem` (per node) for `num_bytes`: times `headroom`, whole GiB rounded up.

    Example:
        >>> slurm_mem(10 * 2**30), slurm_mem(1, headroom=1.0)
        ('12G', '1G')
    """
    return f"{max(1, math.ceil(num_bytes * headroom / _GIB - _EPS))}G"


def slurm_gres(gpus_per_node: int) -> str:
    """SLURM `--gres` (per node) for `gpus_per_node` GPUs.

    Example:
        >>> slurm_gres(4)
        'gpu:4'
    """
    return f"gpu:{gpus_per_node}"
