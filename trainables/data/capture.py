"""`Capture`: the columnar, in-memory form of one CAN-bus capture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_PAYLOAD_BYTES", "Capture"]

MAX_PAYLOAD_BYTES = 8


@dataclass(frozen=True, eq=False)
class Capture:
    """CAN messages of one capture (a file, or generated traffic), in time order.

    Every array has one row per message. Payload bytes past a message's `dlc` are zero.

    Args:
        name: Where the messages came from (a file path, or a description of generated traffic).
        timestamp: float64 seconds, shape `[n]`.
        can_id: int64 arbitration IDs (11- or 29-bit), shape `[n]`.
        dlc: uint8 payload length in bytes (0-8), shape `[n]`.
        payload: uint8 payload bytes, shape `[n, 8]`.
        attack: bool, True for injected messages, shape `[n]`.
        num_dropped_rows: Bad rows the reader dropped (with `on_bad_rows="skip"`), 0 otherwise.

    Example:
        >>> import numpy as np
        >>> c = Capture.from_arrays("demo", timestamp=[0.0, 0.01], can_id=[0x81, 0x316],
        ...                         payload=np.zeros((2, 8), np.uint8), attack=[0, 1])
        >>> len(c), int(c.attack.sum())
        (2, 1)
    """

    name: str
    timestamp: np.ndarray
    can_id: np.ndarray
    dlc: np.ndarray
    payload: np.ndarray
    attack: np.ndarray
    num_dropped_rows: int = 0

    def __post_init__(self) -> None:
        n = len(self.timestamp)
        for field in ("can_id", "dlc", "payload", "attack"):
            if len(getattr(self, field)) != n:
                raise ValueError(
                    f"Capture {self.name!r}: {field} has {len(getattr(self, field))}"
                    f" rows, timestamp has {n}"
                )
        if self.payload.ndim != 2 or self.payload.shape[1] != MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"Capture {self.name!r}: payload must be [n, 8], got {self.payload.shape}"
            )

    def __len__(self) -> int:
        return len(self.timestamp)

    @classmethod
    def from_arrays(
        cls,
        name: str,
        *,
        timestamp: np.typing.ArrayLike,
        can_id: np.typing.ArrayLike,
        payload: np.typing.ArrayLike,
        attack: np.typing.ArrayLike,
        dlc: np.typing.ArrayLike | None = None,
    ) -> Capture:
        """Build a capture with the canonical dtypes; `dlc` defaults to 8 for every message."""
        payload_arr = np.ascontiguousarray(payload, dtype=np.uint8)
        n = len(payload_arr)
        return cls(
            name=name,
            timestamp=np.ascontiguousarray(timestamp, dtype=np.float64),
            can_id=np.ascontiguousarray(can_id, dtype=np.int64),
            dlc=(
                np.full(n, MAX_PAYLOAD_BYTES, np.uint8)
                if dlc is None
                else np.ascontiguousarray(dlc, dtype=np.uint8)
            ),
            payload=payload_arr,
            attack=np.ascontiguousarray(attack, dtype=bool),
        )
