"""Labelled attacks injected into synthetic traffic, as intervals of time.

- DoS: a flood of a dominant-priority ID (0x000, sometimes another ID below every legitimate
  one), zero payload, one message every 0.2-1 ms (real hcrl_sa DoS: 0.56 ms).
- Fuzzing: random IDs (uniform over 11 bits, plus up to half drawn from the vehicle's own IDs)
  with random payloads, one message every 0.5-16 ms (real hcrl_sa fuzzing: about 1 ms).
- Spoofing: a legitimate 10-20 ms frame (rpm, gear, speed, ...) with one fixed payload whose
  signals hold a plausible but wrong value, 1-4 times as often as the frame itself (real set_04
  rpm spoofing: 3 times).

Rates are drawn log-uniformly per interval and interval lengths vary about fivefold, so windows
of 100 messages range from a handful of injections (slow fuzzing or spoofing, interval edges) to
floods of 70 and more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from trainables.data.capture import MAX_PAYLOAD_BYTES
from trainables.data.synthetic._payload import apply_checksum, encode_payloads
from trainables.data.synthetic._state import VehicleState
from trainables.data.synthetic._vehicle import SyntheticVehicle

__all__ = ["ATTACK_KINDS", "AttackInterval", "AttackKind", "attack_messages", "plan_attacks"]

AttackKind = Literal["dos", "fuzzing", "spoofing"]
ATTACK_KINDS: tuple[AttackKind, ...] = ("dos", "fuzzing", "spoofing")

_TYPICAL_INTERVAL_S = 4.0  # real captures attack for 0.7-5 s at a time
_DOS_PERIOD_S = (2e-4, 1e-3)
_FUZZING_PERIOD_S = (5e-4, 1.6e-2)
_SPOOFING_RATE_FACTOR = (1.0, 4.0)
_MAX_FUZZING_LEGIT_SHARE = 0.5
_MAX_SPOOF_TARGET_PERIOD_S = 0.02
_NUM_CAN_IDS = 0x800


@dataclass(frozen=True)
class AttackInterval:
    """One attack: what is injected, when and how often.

    Args:
        kind: `"dos"`, `"fuzzing"` or `"spoofing"`.
        start_s: Start, seconds from the capture's start.
        end_s: End, seconds.
        period_s: Time between injected messages, seconds.
        can_id: The flooded or spoofed ID; -1 for fuzzing.
        legit_id_share: Fuzzing only: share of the IDs drawn from the vehicle's own.

    Example:
        >>> dos = AttackInterval("dos", 1.0, 2.0, period_s=5e-4, can_id=0, legit_id_share=0.0)
        >>> dos.num_messages
        2000
    """

    kind: AttackKind
    start_s: float
    end_s: float
    period_s: float
    can_id: int
    legit_id_share: float

    @property
    def num_messages(self) -> int:
        """Number of injected messages."""
        return int(max(self.end_s - self.start_s, 0.0) / self.period_s + 1e-9)


def plan_attacks(
    rng: np.random.Generator,
    vehicle: SyntheticVehicle,
    *,
    kinds: tuple[AttackKind, ...],
    attack_fraction: float,
    num_messages: int,
) -> tuple[list[AttackInterval], float]:
    """Place disjoint attack intervals covering `attack_fraction` of the capture's time.

    Returns:
        The intervals in time order, and the duration (seconds) over which normal traffic plus
        the injected messages number `num_messages` on average.
    """
    normal_rate = vehicle.messages_per_second
    if attack_fraction == 0.0 or not kinds:
        return [], num_messages / normal_rate
    guess_s = num_messages / normal_rate
    num = max(len(kinds), round(attack_fraction * guess_s / _TYPICAL_INTERVAL_S))
    kind_of = rng.permutation(np.resize(np.arange(len(kinds)), num))
    lengths = rng.uniform(0.3, 1.7, num)
    lengths *= attack_fraction / lengths.sum()
    gaps = rng.uniform(0.3, 1.7, num + 1)
    gaps *= (1.0 - attack_fraction) / gaps.sum()
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths[:-1])])

    targets = [
        f
        for f in vehicle.frames
        if f.period_s <= _MAX_SPOOF_TARGET_PERIOD_S and f.signals and f.dlc == MAX_PAYLOAD_BYTES
    ]
    low_id = min(vehicle.can_ids)
    specs: list[tuple[AttackKind, float, int, float]] = []
    for i in range(num):
        kind = kinds[int(kind_of[i])]
        can_id, share = -1, 0.0
        if kind == "dos":
            period = _log_uniform(rng, *_DOS_PERIOD_S)
            can_id = 0 if rng.random() < 0.7 else int(rng.integers(1, low_id))
        elif kind == "fuzzing":
            period = _log_uniform(rng, *_FUZZING_PERIOD_S)
            share = float(rng.uniform(0.0, _MAX_FUZZING_LEGIT_SHARE))
        else:
            target = targets[int(rng.integers(len(targets)))]
            period = target.actual_period_s / _log_uniform(rng, *_SPOOFING_RATE_FACTOR)
            can_id = target.can_id
        specs.append((kind, period, can_id, share))
    # Injected messages add to the count, so the duration for num_messages shrinks.
    attack_rate = sum(frac / spec[1] for frac, spec in zip(lengths, specs, strict=True))
    duration = num_messages / (normal_rate + attack_rate)
    intervals = [
        AttackInterval(kind, start * duration, (start + frac) * duration, period, can_id, share)
        for start, frac, (kind, period, can_id, share) in zip(starts, lengths, specs, strict=True)
    ]
    return intervals, duration


def attack_messages(
    interval: AttackInterval,
    vehicle: SyntheticVehicle,
    state: VehicleState,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The injected messages of `interval`: timestamps, IDs, DLCs and payloads `[n, 8]`."""
    num = interval.num_messages
    # Jitter of +-20% of the period keeps the injector's messages in order.
    slots = np.arange(num) + 0.5 + 0.4 * (rng.random(num) - 0.5)
    t = interval.start_s + slots * interval.period_s
    payload = np.zeros((num, MAX_PAYLOAD_BYTES), dtype=np.uint8)
    dlc = np.full(num, MAX_PAYLOAD_BYTES, dtype=np.uint8)
    if interval.kind == "dos":
        can_id = np.full(num, interval.can_id, dtype=np.int64)
    elif interval.kind == "fuzzing":
        legit = np.asarray(vehicle.can_ids, dtype=np.int64)
        can_id = np.where(
            rng.random(num) < interval.legit_id_share,
            legit[rng.integers(0, len(legit), num)],
            rng.integers(0, _NUM_CAN_IDS, num),
        )
        payload[:] = rng.integers(0, 256, (num, MAX_PAYLOAD_BYTES), dtype=np.uint8)
        short = rng.random(num) < 0.05
        dlc[short] = rng.integers(0, MAX_PAYLOAD_BYTES, int(short.sum()))
        payload[np.arange(MAX_PAYLOAD_BYTES) >= dlc[:, None]] = 0
    else:
        frame = vehicle.frame(interval.can_id)
        can_id = np.full(num, interval.can_id, dtype=np.int64)
        dlc[:] = frame.dlc
        payload[:] = _spoofed_payload(interval, vehicle, state, rng)
    return t, can_id, dlc, payload


def _spoofed_payload(
    interval: AttackInterval,
    vehicle: SyntheticVehicle,
    state: VehicleState,
    rng: np.random.Generator,
) -> np.ndarray:
    """One fixed payload: a legitimate one whose signals hold another plausible value."""
    frame = vehicle.frame(interval.can_id)
    block = encode_payloads(
        frame, np.array([interval.start_s]), rng.integers(0, 256, 1), state, rng
    )
    for sig in frame.signals:
        lo, hi = state.value_range(sig.quantity)
        raw = int(np.clip(rng.uniform(lo, hi) * sig.scale + sig.offset, 0, 256**sig.num_bytes - 1))
        for i in range(sig.num_bytes):
            block[0, sig.byte + i] = (raw >> (8 * i)) & 0xFF
    apply_checksum(frame, block)
    return block[0]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
