"""Payload bytes of a synthetic frame: signals, rolling counter and checksum, vectorised."""

from __future__ import annotations

import numpy as np

from trainables.data.capture import MAX_PAYLOAD_BYTES
from trainables.data.synthetic._state import VehicleState
from trainables.data.synthetic._vehicle import FrameSpec

__all__ = ["apply_checksum", "encode_payloads"]


def encode_payloads(
    frame: FrameSpec,
    t: np.ndarray,
    counter: np.ndarray,
    state: VehicleState,
    rng: np.random.Generator,
) -> np.ndarray:
    """Payloads `[len(t), 8]` uint8 of `frame` sent at times `t` with counter values `counter`."""
    num = len(t)
    block = np.empty((num, MAX_PAYLOAD_BYTES), dtype=np.uint8)
    block[:] = np.asarray(frame.constant_bytes, dtype=np.uint8)
    for sig in frame.signals:
        value = state.sample(sig.quantity, t) * sig.scale + sig.offset
        if sig.noise > 0.0:
            value += rng.standard_normal(num, dtype=np.float32) * np.float32(sig.noise)
        raw = np.clip(np.rint(value), 0, 256**sig.num_bytes - 1).astype(np.uint32)
        for i in range(sig.num_bytes):
            block[:, sig.byte + i] = (raw >> (8 * i)) & 0xFF
    if frame.counter_byte is not None:
        field_mask = (1 << frame.counter_bits) - 1
        count = (counter & field_mask).astype(np.uint8) << np.uint8(frame.counter_shift)
        keep = np.uint8(0xFF & ~(field_mask << frame.counter_shift))
        block[:, frame.counter_byte] = (block[:, frame.counter_byte] & keep) | count
    apply_checksum(frame, block)
    return block


def apply_checksum(frame: FrameSpec, block: np.ndarray) -> None:
    """Write `frame`'s checksum byte into the payloads `block` `[n, 8]`, in place."""
    if frame.checksum_byte is None:
        return
    block[:, frame.checksum_byte] = 0
    used = block[:, : frame.dlc]
    if frame.checksum == "sum8":
        total = used.sum(axis=1, dtype=np.uint32) + (frame.can_id & 0xFF) + (frame.can_id >> 8)
        block[:, frame.checksum_byte] = total & 0xFF
    else:
        block[:, frame.checksum_byte] = np.bitwise_xor.reduce(used, axis=1) ^ (frame.can_id & 0xFF)
