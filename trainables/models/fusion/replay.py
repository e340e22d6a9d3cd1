"""`ReplayBuffer`: a fixed-capacity ring buffer of DQN transitions held in tensors."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from trainables.errors import UserError

__all__ = ["ReplayBuffer", "Transitions"]


class Transitions(NamedTuple):
    """A batch of transitions; every tensor has one row per transition.

    Attributes:
        states: float `[B, state_dim]`.
        actions: int64 `[B]`.
        rewards: float `[B]`.
        next_states: float `[B, state_dim]`.
        dones: bool `[B]`; True ends the episode (no bootstrapping from `next_states`).
    """

    states: Tensor
    actions: Tensor
    rewards: Tensor
    next_states: Tensor
    dones: Tensor


class ReplayBuffer:
    """Ring buffer of transitions in preallocated tensors; the oldest rows are overwritten.

    Args:
        capacity: Maximum number of transitions kept.
        state_dim: Width of a state.
        device: Where the tensors live. Default "cpu".

    Example:
        >>> buf = ReplayBuffer(capacity=3, state_dim=2)
        >>> buf.push(torch.zeros(5, 2), torch.arange(5), torch.ones(5), torch.zeros(5, 2),
        ...          torch.ones(5, dtype=torch.bool))
        >>> len(buf), sorted(buf.actions.tolist())
        (3, [2, 3, 4])
    """

    def __init__(
        self, capacity: int, state_dim: int, *, device: torch.device | str = "cpu"
    ) -> None:
        if capacity < 1 or state_dim < 1:
            raise UserError(
                f"replay buffer needs capacity >= 1 and state_dim >= 1, got {capacity=},"
                f" {state_dim=}"
            )
        self.capacity = capacity
        self.states = torch.zeros(capacity, state_dim, device=device)
        self.actions = torch.zeros(capacity, dtype=torch.long, device=device)
        self.rewards = torch.zeros(capacity, device=device)
        self.next_states = torch.zeros(capacity, state_dim, device=device)
        self.dones = torch.zeros(capacity, dtype=torch.bool, device=device)
        self._position = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(
        self,
        states: Tensor,
        actions: Tensor,
        rewards: Tensor,
        next_states: Tensor,
        dones: Tensor,
    ) -> None:
        """Append a batch of transitions (rows), wrapping around at capacity.

        Args:
            states: `[B, state_dim]`.
            actions: `[B]` action indices.
            rewards: `[B]`.
            next_states: `[B, state_dim]`.
            dones: `[B]`, True where the episode ended.
        """
        num_rows = states.size(0)
        for name, t in (
            ("actions", actions),
            ("rewards", rewards),
            ("next_states", next_states),
            ("dones", dones),
        ):
            if t.size(0) != num_rows:
                raise ValueError(f"{name} has {t.size(0)} rows, states has {num_rows}")
        keep = min(num_rows, self.capacity)
        start = num_rows - keep  # a push larger than the buffer keeps only its newest rows
        rows = (self._position + torch.arange(keep, device=self.states.device)) % self.capacity
        self.states[rows] = states[start:].to(self.states)
        self.actions[rows] = actions[start:].to(self.actions)
        self.rewards[rows] = rewards[start:].to(self.rewards)
        self.next_states[rows] = next_states[start:].to(self.next_states)
        self.dones[rows] = dones[start:].to(self.dones)
        self._position = (self._position + keep) % self.capacity
        self._size = min(self._size + keep, self.capacity)

    def sample(self, batch_size: int, *, generator: torch.Generator | None = None) -> Transitions:
        """Draw `batch_size` stored transitions uniformly, with replacement.

        Args:
            batch_size: Number of transitions to draw.
            generator: CPU random generator, for reproducible draws. Default: the global one.

        Raises:
            ValueError: The buffer is empty.
        """
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        rows = torch.randint(self._size, (batch_size,), generator=generator)
        rows = rows.to(self.states.device)
        return Transitions(
            self.states[rows],
            self.actions[rows],
            self.rewards[rows],
            self.next_states[rows],
            self.dones[rows],
        )
