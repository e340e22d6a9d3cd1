from __future__ import annotations

import numpy as np

from trainables.data.capture import Capture
from trainables.data.vocab import OOV_INDEX, Vocabulary


def test_vocabulary_maps_unseen_ids_to_oov() -> None:
    vocab = Vocabulary.from_ids([0x316, 0x081, 0x316, 0x7FF])
    assert len(vocab) == 3 and vocab.num_embeddings == 4
    index = vocab.lookup(np.array([0x081, 0x316, 0x7FF, 0x000, 0x800, 0x1FFFFFFF]))
    assert index.tolist() == [1, 2, 3, OOV_INDEX, OOV_INDEX, OOV_INDEX]
    assert index.max() < vocab.num_embeddings


def test_vocabulary_from_captures_and_fingerprint() -> None:
    a = Capture.from_arrays(
        "a", timestamp=[0, 1], can_id=[5, 7], payload=np.zeros((2, 8)), attack=[0, 0]
    )
    b = Capture.from_arrays("b", timestamp=[0], can_id=[6], payload=np.zeros((1, 8)), attack=[0])
    vocab = Vocabulary.from_captures([a, b])
    assert vocab.ids.tolist() == [5, 6, 7]
    assert vocab.fingerprint() == Vocabulary.from_ids([7, 6, 5]).fingerprint()
    assert vocab.fingerprint() != Vocabulary.from_ids([5, 6]).fingerprint()
    assert Vocabulary.from_ids([]).lookup(np.array([1, 2])).tolist() == [0, 0]
