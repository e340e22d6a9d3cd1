from __future__ import annotations

import pytest
import torch

from trainables.errors import UserError
from trainables.models.fusion.replay import ReplayBuffer


def _push(buffer: ReplayBuffer, first: int, count: int) -> None:
    """Push transitions numbered first..first+count-1; the number is the state, action, reward."""
    n = torch.arange(first, first + count)
    states = n.float().unsqueeze(1).repeat(1, 2)
    buffer.push(states, n, n.float(), states + 1, n % 2 == 0)


def test_replay_buffer_wraps_around_at_capacity() -> None:
    buffer = ReplayBuffer(capacity=4, state_dim=2)
    _push(buffer, 0, 3)
    assert len(buffer) == 3
    _push(buffer, 3, 3)  # 3 fills the last row; 4 and 5 overwrite 0 and 1
    assert len(buffer) == 4
    assert buffer.actions.tolist() == [4, 5, 2, 3]
    assert buffer.rewards.tolist() == [4.0, 5.0, 2.0, 3.0]
    assert buffer.states[:, 0].tolist() == [4.0, 5.0, 2.0, 3.0]
    assert buffer.dones.tolist() == [True, False, True, False]


def test_replay_buffer_push_larger_than_capacity_keeps_newest() -> None:
    buffer = ReplayBuffer(capacity=3, state_dim=2)
    _push(buffer, 0, 1)
    _push(buffer, 10, 5)
    assert len(buffer) == 3
    assert sorted(buffer.actions.tolist()) == [12, 13, 14]


def test_replay_buffer_sample_returns_stored_rows() -> None:
    buffer = ReplayBuffer(capacity=8, state_dim=2)
    _push(buffer, 0, 5)
    batch = buffer.sample(16, generator=torch.Generator().manual_seed(0))
    assert batch.states.shape == batch.next_states.shape == (16, 2)
    assert set(batch.actions.tolist()) <= {0, 1, 2, 3, 4}
    assert torch.equal(batch.states[:, 0], batch.actions.float())
    assert torch.equal(batch.next_states, batch.states + 1)


def test_replay_buffer_sample_rejects_empty_buffer() -> None:
    with pytest.raises(ValueError, match="empty replay buffer"):
        ReplayBuffer(capacity=2, state_dim=1).sample(1)


def test_replay_buffer_push_rejects_ragged_rows() -> None:
    buffer = ReplayBuffer(capacity=2, state_dim=1)
    with pytest.raises(ValueError, match="rewards has 1 rows, states has 2"):
        buffer.push(
            torch.zeros(2, 1), torch.zeros(2), torch.zeros(1), torch.zeros(2, 1), torch.zeros(2)
        )


def test_replay_buffer_rejects_zero_capacity() -> None:
    with pytest.raises(UserError, match="capacity >= 1 and state_dim >= 1, got capacity=0"):
        ReplayBuffer(capacity=0, state_dim=15)
