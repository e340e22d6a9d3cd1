from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from trainables.data.capture import MAX_PAYLOAD_BYTES, Capture
from trainables.data.synthetic import (
    ATTACK_KINDS,
    SPLIT_FRACTIONS,
    AttackKind,
    SyntheticConfig,
    SyntheticVehicle,
    generate_capture,
    synthetic_splits,
)
from trainables.errors import UserError

VEHICLE = SyntheticVehicle.from_seed(0)


def _columns(capture: Capture) -> tuple[np.ndarray, ...]:
    return capture.timestamp, capture.can_id, capture.dlc, capture.payload, capture.attack


def _attack_runs(capture: Capture, *, max_gap_s: float = 0.5) -> list[np.ndarray]:
    """Indices of the attack messages, one array per attack interval."""
    idx = np.flatnonzero(capture.attack)
    breaks = np.flatnonzero(np.diff(capture.timestamp[idx]) > max_gap_s) + 1
    return np.split(idx, breaks)


@pytest.fixture(scope="module")
def normal() -> Capture:
    return generate_capture(SyntheticConfig(num_messages=100_000, attack_fraction=0.0))


@pytest.fixture(scope="module")
def mixed() -> Capture:
    return generate_capture(SyntheticConfig(num_messages=300_000, seed=5))


def _single_kind(kind: AttackKind) -> Capture:
    return generate_capture(SyntheticConfig(num_messages=200_000, seed=3, attack_kinds=(kind,)))


def test_generate_capture_same_seed_is_byte_identical() -> None:
    config = SyntheticConfig(num_messages=20_000, seed=7)
    first, second = generate_capture(config), generate_capture(config)
    for a, b in zip(_columns(first), _columns(second), strict=True):
        assert a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()
    assert first.name == second.name


def test_generate_capture_other_seed_differs_on_the_same_vehicle() -> None:
    first = generate_capture(SyntheticConfig(num_messages=20_000, seed=1, attack_fraction=0.0))
    second = generate_capture(SyntheticConfig(num_messages=20_000, seed=2, attack_fraction=0.0))
    assert not np.array_equal(first.timestamp, second.timestamp)
    assert not np.array_equal(first.payload, second.payload)
    assert set(np.unique(first.can_id)) == set(np.unique(second.can_id)) == set(VEHICLE.can_ids)


def test_generate_capture_other_vehicle_seed_has_other_ids() -> None:
    other = generate_capture(SyntheticConfig(num_messages=20_000, vehicle_seed=1))
    assert set(SyntheticVehicle.from_seed(1).can_ids) != set(VEHICLE.can_ids)
    assert set(np.unique(other.can_id[~other.attack])) == set(
        SyntheticVehicle.from_seed(1).can_ids
    )


@pytest.mark.parametrize("num_messages", [1, 2, 99, 4_321, 100_003])
def test_generate_capture_has_exact_length(num_messages: int) -> None:
    capture = generate_capture(SyntheticConfig(num_messages=num_messages, seed=num_messages))
    assert all(len(column) == num_messages for column in _columns(capture))


def test_generate_capture_columns_are_well_formed(mixed: Capture) -> None:
    assert mixed.timestamp.dtype == np.float64 and mixed.can_id.dtype == np.int64
    assert mixed.dlc.dtype == np.uint8 and mixed.payload.dtype == np.uint8
    assert mixed.attack.dtype == np.bool_
    assert mixed.timestamp[0] >= 0.0
    assert np.all(np.diff(mixed.timestamp) >= 0.0)
    assert mixed.can_id.min() >= 0 and mixed.can_id.max() < 0x800
    assert mixed.dlc.max() <= MAX_PAYLOAD_BYTES
    past_dlc = np.arange(MAX_PAYLOAD_BYTES) >= mixed.dlc[:, None]
    assert not mixed.payload[past_dlc].any()
    assert (mixed.dlc[~mixed.attack] < MAX_PAYLOAD_BYTES).any()


def test_generate_capture_attack_free_has_only_vehicle_frames(normal: Capture) -> None:
    assert not normal.attack.any()
    assert set(np.unique(normal.can_id)) == set(VEHICLE.can_ids)
    assert normal.name == "synthetic:vehicle=0:seed=0:n=100000:attack_free"


def test_generate_capture_attacks_cover_attack_fraction_of_time(mixed: Capture) -> None:
    runs = _attack_runs(mixed)
    attacked_s = sum(mixed.timestamp[run[-1]] - mixed.timestamp[run[0]] for run in runs)
    assert len(runs) >= len(ATTACK_KINDS)
    assert attacked_s / mixed.timestamp[-1] == pytest.approx(0.3, abs=0.03)
    assert mixed.name == "synthetic:vehicle=0:seed=5:n=300000:dos+fuzzing+spoofing@0.3"


def test_generate_capture_dos_floods_a_dominant_id() -> None:
    capture = _single_kind("dos")
    assert capture.can_id[capture.attack].max() < min(VEHICLE.can_ids)
    assert not capture.payload[capture.attack].any()
    for run in _attack_runs(capture):
        assert len(np.unique(capture.can_id[run])) == 1
        rate = (len(run) - 1) / (capture.timestamp[run[-1]] - capture.timestamp[run[0]])
        assert rate >= 900.0  # sub-millisecond period, against 10 ms for the fastest frame
    assert (capture.can_id[capture.attack] == 0).any()


def test_generate_capture_fuzzing_sends_random_ids_and_payloads() -> None:
    capture = _single_kind("fuzzing")
    ids = capture.can_id[capture.attack]
    legit = np.isin(ids, VEHICLE.can_ids)
    assert len(np.unique(ids)) > 500
    assert legit.any() and (~legit).any()
    full = capture.payload[capture.attack & (capture.dlc == MAX_PAYLOAD_BYTES)]
    assert full.mean() == pytest.approx(127.5, abs=3.0)
    assert len(np.unique(full)) == 256


def test_generate_capture_spoofing_repeats_a_legit_frame_with_fixed_payload() -> None:
    capture = _single_kind("spoofing")
    runs = _attack_runs(capture)
    assert len(runs) >= 2
    for run in runs:
        (can_id,) = np.unique(capture.can_id[run])
        frame = VEHICLE.frame(int(can_id))
        assert frame.period_s <= 0.02 and frame.signals
        assert len(np.unique(capture.payload[run], axis=0)) == 1
        assert np.all(capture.dlc[run] == frame.dlc)
        period = np.median(np.diff(capture.timestamp[run]))
        assert frame.actual_period_s / 4.5 <= period <= frame.actual_period_s * 1.1


def test_generate_capture_has_subtle_and_flooded_windows(mixed: Capture) -> None:
    usable = len(mixed) // 100 * 100
    per_window = mixed.attack[:usable].reshape(-1, 100).sum(axis=1)
    attacked = per_window[per_window > 0]
    assert 0.2 < len(attacked) / len(per_window) < 0.7
    assert np.mean(attacked <= 10) > 0.1
    assert np.mean(attacked >= 40) > 0.1


def test_generate_capture_normal_traffic_follows_frame_periods(normal: Capture) -> None:
    for frame in VEHICLE.frames:
        t = normal.timestamp[normal.can_id == frame.can_id]
        assert np.median(np.diff(t)) == pytest.approx(frame.actual_period_s, rel=0.02)
        assert len(t) == pytest.approx(normal.timestamp[-1] / frame.actual_period_s, abs=2)
    periods = {f.period_s for f in VEHICLE.frames}
    assert min(periods) == 0.01 and max(periods) >= 0.1


def test_generate_capture_counters_count_and_checksums_match(normal: Capture) -> None:
    num_counters = num_checksums = 0
    for frame in VEHICLE.frames:
        payload = normal.payload[normal.can_id == frame.can_id].astype(np.int64)
        if frame.counter_byte is not None:
            mask = (1 << frame.counter_bits) - 1
            counter = (payload[:, frame.counter_byte] >> frame.counter_shift) & mask
            assert np.all((np.diff(counter) & mask) == 1)
            num_counters += 1
        if frame.checksum_byte is not None:
            others = payload[:, : frame.dlc].copy()
            others[:, frame.checksum_byte] = 0
            if frame.checksum == "sum8":
                expected = (
                    others.sum(axis=1) + (frame.can_id & 0xFF) + (frame.can_id >> 8)
                ) & 0xFF
            else:
                expected = np.bitwise_xor.reduce(others, axis=1) ^ (frame.can_id & 0xFF)
            assert np.array_equal(payload[:, frame.checksum_byte], expected)
            num_checksums += 1
    assert num_counters >= 3 and num_checksums >= 3


def test_generate_capture_signals_vary_slowly(normal: Capture) -> None:
    frame = VEHICLE.frames[0]
    (rpm,) = [s for s in frame.signals if s.quantity == "rpm"]
    payload = normal.payload[normal.can_id == frame.can_id].astype(np.int64)
    value = (payload[:, rpm.byte] + 256 * payload[:, rpm.byte + 1]) / rpm.scale
    assert value.min() >= 600 and value.max() <= 6600
    assert value.max() - value.min() > 500
    assert np.median(np.abs(np.diff(value))) < 10


def test_synthetic_vehicle_has_realistic_frames() -> None:
    for seed in range(5):
        vehicle = SyntheticVehicle.from_seed(seed)
        ids = vehicle.can_ids
        assert 25 <= len(ids) <= 45 and len(set(ids)) == len(ids)
        assert min(ids) >= 0x10 and max(ids) < 0x800
        assert {f.period_s for f in vehicle.frames} <= {0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0}
        quantities = {s.quantity for f in vehicle.frames for s in f.signals}
        assert {"rpm", "gear", "speed_kmh", "steering_deg"} <= quantities
    assert any(f.dlc < MAX_PAYLOAD_BYTES for f in VEHICLE.frames)


def test_synthetic_splits_follows_can_train_and_test_layout() -> None:
    splits = synthetic_splits(120_000, seed=2)
    assert list(splits) == list(SPLIT_FRACTIONS)
    sizes = {name: len(captures[0]) for name, captures in splits.items()}
    assert sizes == {
        "train_01_attack_free": 30_000,
        "train_02_with_attacks": 60_000,
        "test_01_known_vehicle_known_attack": 30_000,
    }
    (free,), (train,), (test,) = splits.values()
    assert not free.attack.any() and train.attack.any() and test.attack.any()
    assert free.name == "synthetic:train_01_attack_free:seed=2:n=30000"
    vehicle_ids = set(SyntheticVehicle.from_seed(2).can_ids)
    for capture in (free, train, test):
        assert set(np.unique(capture.can_id[~capture.attack])) == vehicle_ids
    assert not np.array_equal(train.payload[:1000], test.payload[:1000])


def test_synthetic_splits_is_deterministic_per_seed() -> None:
    first, again, other = (synthetic_splits(3_000, seed=s) for s in (0, 0, 1))
    for split in SPLIT_FRACTIONS:
        for a, b in zip(_columns(first[split][0]), _columns(again[split][0]), strict=True):
            assert a.tobytes() == b.tobytes()
        assert not np.array_equal(first[split][0].can_id, other[split][0].can_id)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_messages": 0}, r"num_messages must be an integer in \[1, "),
        ({"num_messages": 2_000_000_000}, "num_messages must be an integer in"),
        ({"num_messages": 10.0}, "num_messages must be an integer"),
        ({"num_messages": True}, "num_messages must be an integer"),
        ({"num_messages": 10, "seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"num_messages": 10, "vehicle_seed": -3}, "vehicle_seed must be an integer >= 0"),
        ({"num_messages": 10, "attack_fraction": 0.95}, r"attack_fraction must be .* got 0.95"),
        ({"num_messages": 10, "attack_fraction": -0.1}, "attack_fraction must be a number"),
        ({"num_messages": 10, "attack_fraction": "0.3"}, "attack_fraction must be a number"),
        ({"num_messages": 10, "attack_kinds": ("dos", "replay")}, "attack_kinds must be a tuple"),
        ({"num_messages": 10, "attack_kinds": ["dos"]}, "attack_kinds must be a tuple"),
        ({"num_messages": 10, "attack_kinds": ("dos", "dos")}, "attack_kinds must not repeat"),
        ({"num_messages": 10, "attack_kinds": ()}, "attack_kinds is empty but attack_fraction"),
    ],
)
def test_synthetic_config_rejects_bad_fields(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UserError, match=match):
        SyntheticConfig(**kwargs)


def test_synthetic_config_allows_no_kinds_without_attacks() -> None:
    capture = generate_capture(SyntheticConfig(500, attack_fraction=0.0, attack_kinds=()))
    assert not capture.attack.any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_messages": 2}, r"num_messages must be an integer in \[3, "),
        ({"num_messages": 100, "seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_synthetic_splits_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UserError, match=match):
        synthetic_splits(**kwargs)
