"""Generate a synthetic capture, and the embedded default dataset in the can-train-and-test layout.

Every stream (an ECU's frames, an attack interval) is generated vectorised into one preallocated
set of columns, then all are merged by one stable argsort of the timestamps: about 20 bytes per
message before the merge and 26 after, so 20 million messages peak well under 1 GiB.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from trainables.data.capture import MAX_PAYLOAD_BYTES, Capture
from trainables.data.synthetic._attacks import (
    ATTACK_KINDS,
    AttackInterval,
    AttackKind,
    attack_messages,
    plan_attacks,
)
from trainables.data.synthetic._payload import encode_payloads
from trainables.data.synthetic._state import simulate_state
from trainables.data.synthetic._vehicle import FrameSpec, SyntheticVehicle
from trainables.errors import UserError

__all__ = ["MAX_SYNTHETIC_MESSAGES", "SPLIT_FRACTIONS", "SyntheticConfig", "generate_capture"]
__all__ += ["SYNTHETIC_BYTES_PER_MESSAGE", "synthetic_splits"]

MAX_SYNTHETIC_MESSAGES = 1_000_000_000
SYNTHETIC_BYTES_PER_MESSAGE = 26  # a merged capture's columns, per message (see above)
MAX_ATTACK_FRACTION = 0.9
# Share of `num_messages` per split of `synthetic_splits`; train_02 takes the rounding rest.
SPLIT_FRACTIONS: dict[str, float] = {
    "train_01_attack_free": 0.25,
    "train_02_with_attacks": 0.5,
    "test_01_known_vehicle_known_attack": 0.25,
}
_MAX_JITTER_PERIODS = 0.4  # cycle jitter is clipped to +-40% of the period: frames keep order
_SEND_NOISE_S = 3e-5  # arbitration delay on top of an ECU's cycle


@dataclass(frozen=True)
class SyntheticConfig:
    """What `generate_capture` generates.

    Args:
        num_messages: Exact number of messages, 1 to 1e9 (about 26 bytes each in memory).
        seed: Seed of the traffic and the attacks (default 0).
        vehicle_seed: Seed of the vehicle: its CAN IDs, periods and payload layouts (default 0).
            Captures that share it come from the same car.
        attack_fraction: Share of the capture's time under attack, 0 to 0.9 (default 0.3); 0
            gives attack-free traffic.
        attack_kinds: Attacks to inject, each in its own intervals (default all three).

    Raises:
        UserError: A field is out of range; the message names it.

    Example:
        >>> config = SyntheticConfig(num_messages=5_000, seed=1, attack_kinds=("spoofing",))
        >>> capture = generate_capture(config)
        >>> len(capture), capture.name
        (5000, 'synthetic:vehicle=0:seed=1:n=5000:spoofing@0.3')
    """

    num_messages: int
    seed: int = 0
    vehicle_seed: int = 0
    attack_fraction: float = 0.3
    attack_kinds: tuple[AttackKind, ...] = ATTACK_KINDS

    def __post_init__(self) -> None:
        _check_int("num_messages", self.num_messages, 1, MAX_SYNTHETIC_MESSAGES)
        _check_int("seed", self.seed, 0, None)
        _check_int("vehicle_seed", self.vehicle_seed, 0, None)
        fraction = self.attack_fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not 0.0 <= fraction <= MAX_ATTACK_FRACTION
        ):
            raise UserError(
                f"attack_fraction must be a number in [0, {MAX_ATTACK_FRACTION}], got {fraction!r}"
            )
        kinds = self.attack_kinds
        if not isinstance(kinds, tuple) or any(k not in ATTACK_KINDS for k in kinds):
            raise UserError(
                f"attack_kinds must be a tuple of {', '.join(map(repr, ATTACK_KINDS))},"
                f" got {kinds!r}"
            )
        if len(set(kinds)) != len(kinds):
            raise UserError(f"attack_kinds must not repeat a kind, got {kinds!r}")
        if fraction > 0 and not kinds:
            raise UserError(
                "attack_kinds is empty but attack_fraction > 0: name at least one kind,"
                " or set attack_fraction=0 for attack-free traffic"
            )

    @property
    def name(self) -> str:
        """Description used as the capture's name."""
        if self.attack_fraction == 0 or not self.attack_kinds:
            attacks = "attack_free"
        else:
            attacks = f"{'+'.join(self.attack_kinds)}@{self.attack_fraction:g}"
        return (
            f"synthetic:vehicle={self.vehicle_seed}:seed={self.seed}"
            f":n={self.num_messages}:{attacks}"
        )


def generate_capture(config: SyntheticConfig) -> Capture:
    """Generate `config.num_messages` messages of periodic traffic with labelled attacks.

    The same config always gives byte-identical arrays. Timestamps start near 0 s.
    """
    num = config.num_messages
    vehicle = SyntheticVehicle.from_seed(config.vehicle_seed)
    plan_seq, state_seq, ecu_seq, attack_seq = np.random.SeedSequence(
        [config.vehicle_seed, config.seed]
    ).spawn(4)
    plan_rng = np.random.default_rng(plan_seq)
    intervals, duration = plan_attacks(
        plan_rng,
        vehicle,
        kinds=config.attack_kinds,
        attack_fraction=config.attack_fraction,
        num_messages=num,
    )
    ecus = _group_by_ecu(vehicle)
    period = np.array([frames[0].period_s for frames in ecus])
    actual_period = np.array([frames[0].actual_period_s for frames in ecus])
    # Each ECU starts late enough that its first message, jitter included, is at t >= 0.
    phase = (_MAX_JITTER_PERIODS + plan_rng.random(len(ecus))) * period
    horizon = _complete_horizon(ecus, phase, intervals, num, duration)
    # Every message at or before `horizon` is generated: a cycle later than these starts after
    # horizon + period and, jittered, still sends after `horizon`.
    num_cycles = np.floor((horizon + period - phase) / actual_period).astype(np.int64) + 1
    sizes = [int(c) * len(frames) for c, frames in zip(num_cycles, ecus, strict=True)]
    total = sum(sizes) + sum(interval.num_messages for interval in intervals)

    timestamp = np.empty(total, dtype=np.float64)
    can_id = np.empty(total, dtype=np.uint16)
    dlc = np.empty(total, dtype=np.uint8)
    payload = np.empty((total, MAX_PAYLOAD_BYTES), dtype=np.uint8)
    attack = np.zeros(total, dtype=bool)
    state = simulate_state(np.random.default_rng(state_seq), duration_s=horizon + 2.0)

    start = 0
    ecu_rngs = [np.random.default_rng(s) for s in ecu_seq.spawn(len(ecus))]
    for e, frames in enumerate(ecus):
        rng, cycles = ecu_rngs[e], int(num_cycles[e])
        jitter = np.clip(
            rng.standard_normal(cycles) * frames[0].jitter_s,
            -_MAX_JITTER_PERIODS * period[e],
            _MAX_JITTER_PERIODS * period[e],
        )
        cycle_start = phase[e] + np.arange(cycles) * actual_period[e] + jitter
        counter = np.arange(cycles, dtype=np.int64)
        for frame in frames:
            t = cycle_start + frame.slot_offset_s
            t += rng.random(cycles, dtype=np.float32) * np.float32(_SEND_NOISE_S)
            rows = slice(start, start + cycles)
            timestamp[rows] = t
            can_id[rows] = frame.can_id
            dlc[rows] = frame.dlc
            first = int(rng.integers(0, 256))
            payload[rows] = encode_payloads(frame, t, counter + first, state, rng)
            start += cycles
    attack_rng = np.random.default_rng(attack_seq)
    for interval in intervals:
        t, ids, lengths, data = attack_messages(interval, vehicle, state, attack_rng)
        rows = slice(start, start + len(t))
        timestamp[rows], can_id[rows], dlc[rows], payload[rows] = t, ids, lengths, data
        attack[rows] = True
        start += len(t)

    # Streams are sorted runs, which the stable sort (timsort) merges in near-linear time.
    order = np.argsort(timestamp, kind="stable")[:num]
    timestamp = timestamp[order]
    np.round(timestamp, 6, out=timestamp)  # microseconds, like real captures
    can_id_out = can_id[order].astype(np.int64)
    del can_id
    payload = payload.view(np.uint64).reshape(total)[order].view(np.uint8).reshape(num, -1)
    return Capture.from_arrays(
        config.name,
        timestamp=timestamp,
        can_id=can_id_out,
        dlc=dlc[order],
        payload=payload,
        attack=attack[order],
    )


def synthetic_splits(num_messages: int, *, seed: int = 0) -> dict[str, list[Capture]]:
    """The embedded default dataset: one vehicle, laid out like can-train-and-test.

    Splits (one capture each) and their share of `num_messages` (`SPLIT_FRACTIONS`):
    `train_01_attack_free` 25% (normal traffic only), `train_02_with_attacks` 50% (DoS, fuzzing
    and spoofing over 30% of the time), `test_01_known_vehicle_known_attack` 25% (same vehicle
    and attack kinds, other traffic and attack seeds). Traffic seeds are `3 * seed + i` for the
    i-th split; the vehicle seed is `seed`.

    Args:
        num_messages: Messages over all splits, at least 3.
        seed: Seed of the vehicle and, through it, of every split (default 0).

    Raises:
        UserError: `num_messages` < 3 or `seed` < 0.
    """
    _check_int("num_messages", num_messages, len(SPLIT_FRACTIONS), MAX_SYNTHETIC_MESSAGES)
    _check_int("seed", seed, 0, None)
    train_01 = max(1, round(num_messages * SPLIT_FRACTIONS["train_01_attack_free"]))
    test_01 = max(1, round(num_messages * SPLIT_FRACTIONS["test_01_known_vehicle_known_attack"]))
    sizes = {
        "train_01_attack_free": train_01,
        "train_02_with_attacks": num_messages - train_01 - test_01,
        "test_01_known_vehicle_known_attack": test_01,
    }
    splits: dict[str, list[Capture]] = {}
    for i, (split, size) in enumerate(sizes.items()):
        config = SyntheticConfig(
            num_messages=size,
            seed=3 * seed + i,
            vehicle_seed=seed,
            attack_fraction=0.0 if split == "train_01_attack_free" else 0.3,
        )
        capture = generate_capture(config)
        name = f"synthetic:{split}:seed={seed}:n={size}"
        splits[split] = [replace(capture, name=name)]
    return splits


def _group_by_ecu(vehicle: SyntheticVehicle) -> list[list[FrameSpec]]:
    groups: dict[int, list[FrameSpec]] = {}
    for frame in vehicle.frames:
        groups.setdefault(frame.ecu, []).append(frame)
    return list(groups.values())


def _complete_horizon(
    ecus: list[list[FrameSpec]],
    phase: np.ndarray,
    intervals: list[AttackInterval],
    num_messages: int,
    duration: float,
) -> float:
    """A time by which at least `num_messages` messages are sent, whatever the jitter."""
    period = np.array([frames[0].period_s for frames in ecus])
    actual_period = np.array([frames[0].actual_period_s for frames in ecus])
    num_frames = np.array([len(frames) for frames in ecus])
    latest = (
        phase
        + _MAX_JITTER_PERIODS * period
        + np.array([frames[-1].slot_offset_s for frames in ecus])
        + _SEND_NOISE_S
    )
    num_injected = sum(interval.num_messages for interval in intervals)  # all end by `duration`
    horizon = duration
    while True:
        cycles = np.maximum(np.floor((horizon - latest) / actual_period) + 1, 0)
        if int((cycles * num_frames).sum()) + num_injected >= num_messages:
            return horizon
        horizon = horizon * 1.001 + 0.01


def _check_int(field: str, value: object, lo: int, hi: int | None) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < lo
        or (hi is not None and value > hi)
    ):
        bound = f"in [{lo}, {hi:_}]" if hi is not None else f">= {lo}"
        raise UserError(f"{field} must be an integer {bound}, got {value!r}")
