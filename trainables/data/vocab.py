"""`Vocabulary`: CAN ID -> embedding index, built from the training split only."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from trainables.data.capture import Capture

__all__ = ["OOV_INDEX", "Vocabulary"]

OOV_INDEX = 0


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """The CAN IDs seen in training, each mapped to an index 1..len(vocab).

    Every ID not seen in training maps to the one out-of-vocabulary index 0, so the vocabulary
    never grows at test time (a growing vocabulary overflows a model's ID embedding).
    An embedding over it needs `num_embeddings` rows.

    Args:
        ids: Sorted, distinct int64 CAN IDs.

    Example:
        >>> v = Vocabulary.from_ids([0x316, 0x081, 0x316])
        >>> v.lookup(np.array([0x081, 0x316, 0x7FF])).tolist(), len(v), v.num_embeddings
        ([1, 2, 0], 2, 3)
    """

    ids: np.ndarray

    @classmethod
    def from_ids(cls, ids: Iterable[int] | np.ndarray) -> Vocabulary:
        return cls(
            np.unique(
                np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
            )
        )

    @classmethod
    def from_captures(cls, captures: Iterable[Capture]) -> Vocabulary:
        """The IDs of all messages in `captures` (pass the training split only)."""
        uniques = [np.unique(c.can_id) for c in captures]
        return cls(np.unique(np.concatenate(uniques)) if uniques else np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_embeddings(self) -> int:
        """Rows an ID embedding needs: every known ID plus the out-of-vocabulary index."""
        return len(self.ids) + 1

    def lookup(self, can_id: np.ndarray) -> np.ndarray:
        """Index of each ID (1..len), `OOV_INDEX` for IDs not in the vocabulary."""
        if len(self.ids) == 0:
            return np.zeros(len(can_id), dtype=np.int64)
        pos = np.searchsorted(self.ids, can_id)
        clipped = np.minimum(pos, len(self.ids) - 1)
        return np.where(self.ids[clipped] == can_id, clipped + 1, OOV_INDEX).astype(np.int64)

    def fingerprint(self) -> str:
        """A short hash of the IDs: part of the graph cache key."""
        return hashlib.sha256(self.ids.astype("<i8").tobytes()).hexdigest()[:16]
