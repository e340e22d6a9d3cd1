"""The synthetic vehicle's physical state over time: a drive cycle that payload signals encode.

Every quantity is simulated on a grid of knots `KNOT_SPACING_S` apart and read at a message's
timestamp by linear interpolation, so the cost grows with the capture's duration, not with its
number of messages, and every frame that carries e.g. the speed agrees with the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KNOT_SPACING_S", "QUANTITIES", "VehicleState", "simulate_state"]

KNOT_SPACING_S = 0.1
QUANTITIES: tuple[str, ...] = (
    "speed_kmh",
    "rpm",
    "gear",
    "throttle_pct",
    "brake_pct",
    "steering_deg",
    "yaw_rate_dps",
    "wheel_speed_fl_kmh",
    "wheel_speed_fr_kmh",
    "wheel_speed_rl_kmh",
    "wheel_speed_rr_kmh",
    "coolant_c",
    "fuel_pct",
    "battery_v",
    "drive_mode",
)
_GEAR_UP_KMH = np.array([0.5, 15.0, 30.0, 50.0, 70.0, 95.0])
_KMH_PER_1000_RPM = np.array([1.0, 8.0, 15.0, 23.0, 31.0, 39.0, 47.0])


@dataclass(frozen=True)
class VehicleState:
    """Quantities of `QUANTITIES` at knots `KNOT_SPACING_S` apart, starting at time 0.

    Args:
        values: float64 `[len(QUANTITIES), num_knots]`.

    Example:
        >>> state = simulate_state(np.random.default_rng(0), duration_s=10.0)
        >>> bool(state.sample("gear", np.array([0.0, 5.0])).max() <= 6)
        True
    """

    values: np.ndarray

    def sample(self, quantity: str, t: np.ndarray) -> np.ndarray:
        """Quantity `quantity` at times `t` (seconds), linearly interpolated between knots."""
        row = self.values[QUANTITIES.index(quantity)]
        grid = np.arange(len(row), dtype=np.float64)
        return np.interp(t * (1.0 / KNOT_SPACING_S), grid, row)

    def value_range(self, quantity: str) -> tuple[float, float]:
        """Smallest and largest value of `quantity` over the capture."""
        row = self.values[QUANTITIES.index(quantity)]
        return float(row.min()), float(row.max())


def simulate_state(rng: np.random.Generator, *, duration_s: float) -> VehicleState:
    """Simulate a drive cycle of `duration_s` seconds (stops, gear changes, steering, warm-up)."""
    num_knots = int(duration_s / KNOT_SPACING_S) + 2
    t = np.arange(num_knots) * KNOT_SPACING_S
    accel = _smooth_noise(rng, num_knots, window=80)
    # The walk dips below zero part of the time: the car stands still there.
    speed = np.maximum(_reflect(np.cumsum(accel) * 0.12, -25.0, 140.0), 0.0)
    moving = speed > 0.0
    gear = np.searchsorted(_GEAR_UP_KMH, speed, side="right").astype(np.float64)
    idle_rpm = 750.0 + 40.0 * _smooth_noise(rng, num_knots, window=20)
    rpm = np.where(gear == 0, idle_rpm, speed / _KMH_PER_1000_RPM[gear.astype(np.int64)] * 1e3)
    rpm = np.clip(rpm + 300.0 * np.clip(accel, 0.0, None), 700.0, 6500.0)
    throttle = np.where(moving, np.clip(15.0 + 25.0 * accel, 0.0, 100.0), 0.0)
    brake = np.where(moving, np.clip(-25.0 * accel - 10.0, 0.0, 100.0), 30.0)
    wheel = _reflect(np.cumsum(_smooth_noise(rng, num_knots, window=30)) * 3.0, -540.0, 540.0)
    steering = wheel / (1.0 + speed / 40.0)
    yaw_rate = steering * speed * 4e-3
    wheels = [speed * (1.0 + 4e-3 * _smooth_noise(rng, num_knots, window=10)) for _ in range(4)]
    coolant = 20.0 + 68.0 * (1.0 - np.exp(-t / 600.0)) + 1.5 * _smooth_noise(rng, num_knots, 50)
    fuel = np.clip(75.0 - 2e-3 * t, 5.0, 100.0)
    battery = 13.9 + 0.2 * _smooth_noise(rng, num_knots, window=50)
    mode_walk = np.cumsum(_smooth_noise(rng, num_knots, window=100)) * 0.01
    drive_mode = np.floor(_reflect(mode_walk, 0.0, 3.999))
    rows = [speed, rpm, gear, throttle, brake, steering, yaw_rate, *wheels]
    rows += [coolant, fuel, battery, drive_mode]
    return VehicleState(values=np.stack(rows))


def _smooth_noise(rng: np.random.Generator, num: int, window: int) -> np.ndarray:
    """Gaussian noise averaged over `window` knots, rescaled to unit standard deviation."""
    white = rng.standard_normal(num + window)
    csum = np.cumsum(white)
    return (csum[window:] - csum[:-window]) / np.sqrt(window)


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold `x` into `[lo, hi]` by reflecting at the bounds (keeps a walk smooth, unlike clip)."""
    span = hi - lo
    folded = np.mod(x - lo, 2.0 * span)
    return lo + span - np.abs(folded - span)
