"""A persistent, shared record of how much memory each safety factor used, and the factor to try.

Trials that train the same kind of model on the same data under the same budget report what the
safety factor they used gave: the peak fraction of the budget reached, or an out-of-memory error.
The store keeps, per such key, a recommended factor moved toward the one that would reach a target
peak utilisation, with momentum so that one noisy run does not swing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from trainables.batching.locked_json import LockedJsonFile, canonical_key
from trainables.errors import UserError

__all__ = ["AdaptationPolicy", "SafetyFactorKey", "SafetyFactorStore"]


@dataclass(frozen=True)
class SafetyFactorKey:
    """What a safety factor's outcome depends on.

    Args:
        dataset: The dataset name.
        mode: The training mode (e.g. `"normal"`, `"curriculum"`, `"kd"`).
        model_size: The model size or variant (e.g. `"small"`, `"teacher"`).
        device_type: `"cpu"` or `"cuda"` (or a GPU model name, to keep GPUs apart).
        budget_bytes: The memory budget in bytes the user asked for; 0 for the default budget
            (the available memory shared among concurrent trials).

    Example:
        >>> SafetyFactorKey("hcrl", "normal", "small", "cpu", 4 * 2**30).budget_bytes
        4294967296
    """

    dataset: str
    mode: str
    model_size: str
    device_type: str
    budget_bytes: int

    def __post_init__(self) -> None:
        for name in ("dataset", "mode", "model_size", "device_type"):
            if not getattr(self, name):
                raise ValueError(f"SafetyFactorKey.{name} must not be empty")
        if self.budget_bytes < 0:
            raise ValueError(
                f"SafetyFactorKey.budget_bytes must be >= 0 (0: the default budget), got"
                f" {self.budget_bytes}"
            )


@dataclass(frozen=True)
class AdaptationPolicy:
    """How the recommended safety factor moves after each outcome.

    Each outcome proposes a factor: after an out-of-memory error, the factor used times
    `oom_backoff`; after a run whose peak fraction is outside `target_peak_fraction -
    tolerance`..`target_peak_fraction`, the factor used scaled by `target / peak` (memory grows
    about in proportion to the batch size); otherwise the current recommendation. The
    recommendation moves by `velocity = momentum * velocity + step_size * (proposed - current)`,
    clamped to [`min_factor`, `max_factor`]. An out-of-memory error, or a peak above the target,
    only ever lowers the recommendation (after an OOM, to its proposal at most); a peak below
    the band only ever raises it, whatever the factor used: memory is not all in proportion to
    the batch, so a small factor far below the target can propose less than the recommendation.

    Args:
        target_peak_fraction: The peak fraction of the budget to aim for, in (0, 1]; default 0.9.
        tolerance: How far below the target a peak may be before the factor is raised; default
            0.1.
        oom_backoff: Multiplies the factor that ran out of memory, in (0, 1); default 0.8.
        step_size: How much of the distance to the proposal one outcome moves, in (0, 1];
            default 0.5.
        momentum: The share of the last move that carries on, in [0, 1); default 0.5.
        min_factor: The lowest recommendation; default 0.3.
        max_factor: The highest recommendation; default 1.0.

    Example:
        >>> AdaptationPolicy(target_peak_fraction=0.85).oom_backoff
        0.8
    """

    target_peak_fraction: float = 0.9
    tolerance: float = 0.1
    oom_backoff: float = 0.8
    step_size: float = 0.5
    momentum: float = 0.5
    min_factor: float = 0.3
    max_factor: float = 1.0

    def __post_init__(self) -> None:
        checks = {
            "target_peak_fraction": 0 < self.target_peak_fraction <= 1,
            "tolerance": 0 <= self.tolerance < self.target_peak_fraction,
            "oom_backoff": 0 < self.oom_backoff < 1,
            "step_size": 0 < self.step_size <= 1,
            "momentum": 0 <= self.momentum < 1,
            "min_factor": 0 < self.min_factor <= self.max_factor,
            "max_factor": self.min_factor <= self.max_factor <= 1,
        }
        ranges = {
            "target_peak_fraction": "(0, 1]",
            "tolerance": "[0, target_peak_fraction)",
            "oom_backoff": "(0, 1)",
            "step_size": "(0, 1]",
            "momentum": "[0, 1)",
            "min_factor": "(0, max_factor]",
            "max_factor": "[min_factor, 1]",
        }
        for name, ok in checks.items():
            if not ok:
                raise UserError(
                    f"safety-factor adaptation: {name} must be in {ranges[name]},"
                    f" got {name}={getattr(self, name)!r}"
                )

    def next_state(
        self,
        current: float,
        velocity: float,
        *,
        factor: float,
        peak_fraction: float | None,
        oom: bool,
    ) -> tuple[float, float]:
        """The recommendation and velocity after one outcome (see the class docstring)."""
        # -1: the outcome may only lower the recommendation, +1: only raise it, 0: hold it.
        direction = 0
        proposed = current
        if oom:
            direction, proposed = -1, factor * self.oom_backoff
        elif peak_fraction is not None and peak_fraction > self.target_peak_fraction:
            direction = -1
            proposed = factor * self.target_peak_fraction / peak_fraction
        elif peak_fraction is not None and (
            peak_fraction < self.target_peak_fraction - self.tolerance
        ):
            # Memory is not all in proportion to the batch (weights, optimiser state, data),
            # so a small factor far below the target can propose less than the current
            # recommendation: a run with room to spare never lowers it.
            direction = +1
            proposed = factor * self.target_peak_fraction / max(peak_fraction, 1e-6)
        if direction:
            proposed = min(proposed, current) if direction < 0 else max(proposed, current)
        velocity = self.momentum * velocity + self.step_size * (proposed - current)
        if direction:
            velocity = min(velocity, 0.0) if direction < 0 else max(velocity, 0.0)
        recommended = current + velocity
        if oom:
            recommended = min(recommended, proposed)
        recommended = min(max(recommended, self.min_factor), self.max_factor)
        return recommended, recommended - current


class SafetyFactorStore:
    """Outcomes of safety factors, and a recommended factor per key, in a JSON file.

    Safe to use from concurrent trials in different processes: every `record` is one locked
    read-modify-write (see `LockedJsonFile`).

    Args:
        path: The JSON file (created on the first record).
        policy: How recommendations move; default `AdaptationPolicy()`.

    Example:
        >>> import tempfile
        >>> store = SafetyFactorStore(Path(tempfile.mkdtemp()) / "safety_factors.json")
        >>> key = SafetyFactorKey("hcrl", "normal", "small", "cpu", 4 * 2**30)
        >>> store.recommend(key, default=0.8)
        0.8
        >>> round(store.record(key, factor=0.8, peak_fraction=None, oom=True), 2)
        0.64
        >>> store.recommend(key, default=0.8) < 0.8
        True
    """

    FORMAT_NAME = "batch-hpo safety-factor store"

    def __init__(self, path: Path, *, policy: AdaptationPolicy | None = None) -> None:
        self.policy = policy or AdaptationPolicy()
        self._file = LockedJsonFile(Path(path), format_name=self.FORMAT_NAME)

    @property
    def path(self) -> Path:
        """The JSON file."""
        return self._file.path

    def record(
        self, key: SafetyFactorKey, *, factor: float, peak_fraction: float | None, oom: bool
    ) -> float:
        """Record one outcome and update the key's recommendation.

        Args:
            key: What the outcome depends on.
            factor: The safety factor the trial used, in (0, 1].
            peak_fraction: The peak fraction of the budget reached (`MemoryBudget.peak_fraction`),
                or None where unknown (allowed only with `oom`).
            oom: Whether the trial ran out of memory.

        Returns:
            The key's recommended factor after this outcome.

        Raises:
            UserError: `factor` outside (0, 1].
            ValueError: `peak_fraction` negative, not finite, or None without `oom`.
        """
        if not 0 < factor <= 1:
            raise UserError(f"safety factor must be in (0, 1], got {factor=}")
        if peak_fraction is None and not oom:
            raise ValueError("peak_fraction is needed for a run that did not run out of memory")
        if peak_fraction is not None and not (peak_fraction >= 0 and math.isfinite(peak_fraction)):
            raise ValueError(f"peak_fraction must be a finite number >= 0, got {peak_fraction=}")

        def add_outcome(entries: dict[str, Any]) -> float:
            self._check(entries)
            entry = entries.setdefault(
                canonical_key(key),
                {"recommended": factor, "velocity": 0.0, "num_records": 0, "num_ooms": 0},
            )
            entry["recommended"], entry["velocity"] = self.policy.next_state(
                entry["recommended"],
                entry["velocity"],
                factor=factor,
                peak_fraction=peak_fraction,
                oom=oom,
            )
            entry["num_records"] += 1
            entry["num_ooms"] += int(oom)
            entry["last"] = {"factor": factor, "peak_fraction": peak_fraction, "oom": oom}
            return float(entry["recommended"])

        return self._file.update(add_outcome)

    def recommend(self, key: SafetyFactorKey, *, default: float) -> float:
        """The recommended factor for `key`, or `default` where nothing was recorded for it."""
        entry = self.entries().get(canonical_key(key))
        return default if entry is None else float(entry["recommended"])

    def num_records(self, key: SafetyFactorKey) -> int:
        """How many outcomes were recorded for `key`."""
        entry = self.entries().get(canonical_key(key))
        return 0 if entry is None else int(entry["num_records"])

    def entries(self) -> dict[str, Any]:
        """Every key's entry, checked: a run reads the store before it starts, so a damaged file
        stops it there (exit 2, the file named), not after training.

        Raises:
            UserError: The file is not a store, or an entry is damaged.
        """
        return self._check(self._file.read())

    def _check(self, entries: dict[str, Any]) -> dict[str, Any]:
        def real(value: Any) -> TypeGuard[float]:
            return isinstance(value, int | float) and not isinstance(value, bool)

        for name, entry in entries.items():
            fields = entry if isinstance(entry, dict) else {}
            rates = [fields.get(k) for k in ("recommended", "velocity")]
            counts = [fields.get(k) for k in ("num_records", "num_ooms")]
            sound = (
                all(real(v) and math.isfinite(v) for v in rates)
                and all(real(v) and isinstance(v, int) and v >= 0 for v in counts)
                # Not a safety factor at all: a run would fail on it after its tuner.
                and 0.0 < rates[0] <= 1.0  # type: ignore[operator]
            )
            if not sound:
                raise UserError(
                    f"{self.path}: damaged entry {name}; move the file away or delete it to"
                    f" start a new {self.FORMAT_NAME} file"
                )
        return entries
