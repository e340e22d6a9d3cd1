"""The synthetic vehicle: its ECUs, their CAN frames, periods and payload layouts.

A vehicle depends only on its seed, so captures of the same vehicle (train and test) share CAN
IDs, periods and layouts while their traffic differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["FrameSpec", "SignalSpec", "SyntheticVehicle"]

ChecksumKind = Literal["sum8", "xor8"]

# Nominal periods of real vehicles (hcrl_sa, set_04) and how often they occur there.
_PERIODS_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
_PERIOD_WEIGHTS = (0.32, 0.2, 0.08, 0.2, 0.08, 0.03, 0.09)
_ECU_SIZES = (1, 2, 3, 4)
_ECU_SIZE_WEIGHTS = (0.45, 0.3, 0.15, 0.1)
_SLOT_GAP_S = 2.4e-4  # one 8-byte frame at 500 kbit/s, back to back within an ECU's burst
_MIN_ID, _MAX_ID = 0x010, 0x6FF  # 0x000-0x00F stay free: DoS floods use them
# quantity -> (bytes, scale, offset, noise sd in raw units); raw = value * scale + offset
_ENCODINGS: dict[str, tuple[int, float, float, float]] = {
    "speed_kmh": (2, 100.0, 0.0, 3.0),
    "rpm": (2, 4.0, 0.0, 6.0),
    "gear": (1, 1.0, 0.0, 0.0),
    "throttle_pct": (1, 2.55, 0.0, 0.6),
    "brake_pct": (1, 2.55, 0.0, 0.4),
    "steering_deg": (2, 10.0, 32768.0, 2.0),
    "yaw_rate_dps": (2, 100.0, 32768.0, 5.0),
    "wheel_speed_fl_kmh": (2, 100.0, 0.0, 4.0),
    "wheel_speed_fr_kmh": (2, 100.0, 0.0, 4.0),
    "wheel_speed_rl_kmh": (2, 100.0, 0.0, 4.0),
    "wheel_speed_rr_kmh": (2, 100.0, 0.0, 4.0),
    "coolant_c": (1, 1.0, 40.0, 0.0),
    "fuel_pct": (1, 2.55, 0.0, 0.0),
    "battery_v": (1, 10.0, 0.0, 0.3),
    "drive_mode": (1, 1.0, 0.0, 0.0),
}
_FAST_SIGNALS: tuple[str, ...] = ("rpm", "speed_kmh", "throttle_pct", "brake_pct", "gear")
_FAST_SIGNALS += ("steering_deg", "yaw_rate_dps")
_FAST_SIGNALS += tuple(f"wheel_speed_{w}_kmh" for w in ("fl", "fr", "rl", "rr"))
_MID_SIGNALS: tuple[str, ...] = ("speed_kmh", "gear", "coolant_c", "throttle_pct", "fuel_pct")
_MID_SIGNALS += ("battery_v", "rpm", "drive_mode")
_SLOW_SIGNALS = ("coolant_c", "fuel_pct", "battery_v", "drive_mode")
# Every vehicle has these, on fast frames: the usual spoofing targets (rpm, gear) among them.
_ANCHOR_SIGNALS = (("rpm", "throttle_pct"), ("gear", "speed_kmh"), ("steering_deg",))


@dataclass(frozen=True)
class SignalSpec:
    """A physical quantity in a frame: `raw = round(value * scale + offset + noise)`, clipped.

    Args:
        quantity: Name in `QUANTITIES` (e.g. `"rpm"`).
        byte: Index of the least significant byte (raw values are little-endian).
        num_bytes: 1 or 2.
        scale: Raw units per unit of the quantity.
        offset: Raw value of zero.
        noise: Standard deviation of the per-message sensor noise, in raw units.

    Example:
        >>> SignalSpec("rpm", byte=0, num_bytes=2, scale=4.0, offset=0.0, noise=6.0).num_bytes
        2
    """

    quantity: str
    byte: int
    num_bytes: int
    scale: float
    offset: float
    noise: float


@dataclass(frozen=True)
class FrameSpec:
    """One periodic CAN frame: its ID, timing and payload layout.

    Bytes not covered by a signal, the counter or the checksum keep `constant_bytes`. The counter
    adds 1 per message modulo `2**counter_bits`, in bits `counter_shift..` of `counter_byte`. The
    checksum byte is `(sum(other bytes) + can_id % 256 + can_id // 256) % 256` for `"sum8"` and
    `xor(other bytes) ^ (can_id % 256)` for `"xor8"`, over the first `dlc` bytes.

    Args:
        can_id: 11-bit arbitration ID.
        period_s: Nominal period in seconds; the sending ECU's clock is off by `clock_drift`.
        clock_drift: Relative clock error; the real period is `period_s * (1 + clock_drift)`.
        jitter_s: Standard deviation of each cycle's send time, seconds.
        ecu: Index of the sending ECU; its frames go out back to back each cycle.
        slot: Position in the ECU's burst (0 first).
        dlc: Payload length in bytes, 1-8.
        constant_bytes: 8 bytes, zero past `dlc`.
        signals: Quantities carried.
        counter_byte: Byte of the rolling counter, or None.
        counter_bits: 4 or 8.
        counter_shift: 0, or 4 for a counter in the high nibble.
        checksum_byte: Byte of the checksum, or None.
        checksum: `"sum8"` or `"xor8"` (ignored without `checksum_byte`).

    Example:
        >>> frame = SyntheticVehicle.from_seed(0).frames[0]
        >>> 1 <= frame.dlc <= 8 and frame.period_s <= 0.02
        True
    """

    can_id: int
    period_s: float
    clock_drift: float
    jitter_s: float
    ecu: int
    slot: int
    dlc: int
    constant_bytes: tuple[int, ...]
    signals: tuple[SignalSpec, ...]
    counter_byte: int | None
    counter_bits: int
    counter_shift: int
    checksum_byte: int | None
    checksum: ChecksumKind

    @property
    def actual_period_s(self) -> float:
        """Period with the ECU's clock drift, seconds."""
        return self.period_s * (1.0 + self.clock_drift)

    @property
    def slot_offset_s(self) -> float:
        """Delay after the ECU's cycle start at which this frame goes out, seconds."""
        return self.slot * _SLOT_GAP_S


@dataclass(frozen=True)
class SyntheticVehicle:
    """The ECUs of one synthetic vehicle: 25-45 periodic frames, 10 ms to 1 s.

    Args:
        seed: The vehicle seed it was built from.
        frames: Every periodic frame; frames of one ECU are adjacent, in slot order.

    Example:
        >>> vehicle = SyntheticVehicle.from_seed(0)
        >>> 25 <= len(vehicle.can_ids) <= 45, vehicle == SyntheticVehicle.from_seed(0)
        (True, True)
    """

    seed: int
    frames: tuple[FrameSpec, ...]

    @classmethod
    def from_seed(cls, seed: int) -> SyntheticVehicle:
        """Build the vehicle of `seed` (the same seed always gives the same vehicle)."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7E41C1E]))
        num_frames = int(rng.integers(25, 46))
        frames: list[FrameSpec] = []
        used_ids: set[int] = set()
        ecu = 0
        while len(frames) < num_frames:
            anchors = _ANCHOR_SIGNALS[ecu] if ecu < len(_ANCHOR_SIGNALS) else None
            size = int(rng.choice(_ECU_SIZES, p=_ECU_SIZE_WEIGHTS))
            size = min(size, num_frames - len(frames))
            if anchors is None:
                period = float(rng.choice(_PERIODS_S, p=_PERIOD_WEIGHTS))
            else:
                period = float(rng.choice(_PERIODS_S[:2]))
            ids = _draw_ecu_ids(rng, size, period, used_ids)
            drift = float(np.clip(rng.normal(0.0, 3e-3), -0.01, 0.01))
            jitter = float(np.exp(rng.uniform(np.log(2e-5), np.log(1e-3))))
            for slot, can_id in enumerate(ids):
                forced = anchors if slot == 0 else None
                frames.append(_draw_frame(rng, can_id, period, drift, jitter, ecu, slot, forced))
            ecu += 1
        return cls(seed=seed, frames=tuple(frames))

    @property
    def can_ids(self) -> tuple[int, ...]:
        """The legitimate CAN IDs, sorted."""
        return tuple(sorted(f.can_id for f in self.frames))

    @property
    def messages_per_second(self) -> float:
        """Mean number of messages the vehicle sends per second."""
        return sum(1.0 / f.actual_period_s for f in self.frames)

    def frame(self, can_id: int) -> FrameSpec:
        """The frame with ID `can_id`."""
        for f in self.frames:
            if f.can_id == can_id:
                return f
        raise KeyError(f"vehicle {self.seed} has no frame with ID {can_id:#x}")


def _draw_ecu_ids(rng: np.random.Generator, size: int, period: float, used: set[int]) -> list[int]:
    """Adjacent IDs for one ECU; faster ECUs get lower (higher-priority) IDs, as in real cars."""
    center = 0x100 + 0x180 * (np.log10(period) + 2.0)  # 0x100 at 10 ms, 0x580 at 1 s
    step = int(rng.choice([1, 1, 2, 0x10]))
    while True:
        base = int(np.clip(rng.normal(center, 0x100), _MIN_ID, _MAX_ID - step * size))
        ids = [base + step * j for j in range(size)]
        if not used.intersection(ids):
            used.update(ids)
            return ids


def _draw_frame(
    rng: np.random.Generator,
    can_id: int,
    period: float,
    drift: float,
    jitter: float,
    ecu: int,
    slot: int,
    forced_signals: tuple[str, ...] | None,
) -> FrameSpec:
    """A random payload layout for one frame, busier on faster frames."""
    dlc = 8 if forced_signals is not None or rng.random() < 0.78 else int(rng.integers(1, 8))
    constant = np.where(rng.random(8) < 0.55, 0, rng.integers(0, 256, 8))
    constant = np.where(rng.random(8) < 0.1, 0xFF, constant)
    constant[dlc:] = 0
    free = list(range(dlc))
    fast, slow = period <= 0.02, period >= 0.5

    counter_byte = checksum_byte = None
    if dlc >= 2 and rng.random() < (0.6 if fast else 0.15 if slow else 0.35):
        counter_byte = free.pop(int(rng.integers(len(free))))
    if dlc >= 3 and rng.random() < (0.5 if counter_byte is not None else 0.15):
        checksum_byte = free.pop()  # the last free byte, usually the frame's last
    counter_bits = int(rng.choice([4, 8]))
    counter_shift = int(rng.choice([0, 4])) if counter_bits == 4 else 0
    checksum: ChecksumKind = "sum8" if rng.random() < 0.6 else "xor8"

    if forced_signals is not None:
        wanted = list(forced_signals)
    else:
        pool = _FAST_SIGNALS if fast else _SLOW_SIGNALS if slow else _MID_SIGNALS
        num = int(rng.integers(1, 4) if fast else rng.integers(0, 2 if slow else 3))
        wanted = [str(q) for q in rng.choice(pool, size=min(num, len(pool)), replace=False)]
    signals = []
    for quantity in wanted:
        num_bytes, scale, offset, noise = _ENCODINGS[quantity]
        starts = [b for b in free if all(b + i in free for i in range(num_bytes))]
        if not starts:
            continue
        byte = starts[0] if forced_signals is not None else int(rng.choice(starts))
        for i in range(num_bytes):
            free.remove(byte + i)
        signals.append(SignalSpec(quantity, byte, num_bytes, scale, offset, noise))
    return FrameSpec(
        can_id=can_id,
        period_s=period,
        clock_drift=drift,
        jitter_s=jitter,
        ecu=ecu,
        slot=slot,
        dlc=dlc,
        constant_bytes=tuple(int(b) for b in constant),
        signals=tuple(signals),
        counter_byte=counter_byte,
        counter_bits=counter_bits,
        counter_shift=counter_shift,
        checksum_byte=checksum_byte,
        checksum=checksum,
    )
