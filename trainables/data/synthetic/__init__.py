"""Synthetic CAN-bus traffic with labelled attacks: the embedded default dataset.

A seeded vehicle (25-45 periodic frames from 10 ms to 1 s, grouped into ECUs, with rolling
counters, checksums, constant bytes and quantised drive-cycle signals) sends normal traffic;
DoS, fuzzing and spoofing attacks are injected over intervals of time and labelled
`attack=True` message by message. Generation is vectorised: 20 million messages take seconds.
"""

from __future__ import annotations

from trainables.data.synthetic._attacks import ATTACK_KINDS, AttackKind
from trainables.data.synthetic._generate import (
    MAX_SYNTHETIC_MESSAGES,
    SPLIT_FRACTIONS,
    SYNTHETIC_BYTES_PER_MESSAGE,
    SyntheticConfig,
    generate_capture,
    synthetic_splits,
)
from trainables.data.synthetic._state import QUANTITIES
from trainables.data.synthetic._vehicle import FrameSpec, SignalSpec, SyntheticVehicle

SYNTHETIC_SPLITS: tuple[str, ...] = tuple(SPLIT_FRACTIONS)
"""Split names of the embedded synthetic dataset, in the can-train-and-test layout."""
GENERATOR_VERSION = 1
"""Bump when generated traffic changes for the same seed: part of the graph cache key."""

__all__ = [
    "ATTACK_KINDS",
    "GENERATOR_VERSION",
    "MAX_SYNTHETIC_MESSAGES",
    "QUANTITIES",
    "SPLIT_FRACTIONS",
    "SYNTHETIC_BYTES_PER_MESSAGE",
    "SYNTHETIC_SPLITS",
    "AttackKind",
    "FrameSpec",
    "SignalSpec",
    "SyntheticConfig",
    "SyntheticVehicle",
    "generate_capture",
    "synthetic_splits",
]
