"""`FusionAgent`: a DQN that picks, per graph, how much to trust the GAT over the VGAE."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.errors import UserError
from trainables.models.features import ModelSize, check_model_size
from trainables.models.fusion.replay import ReplayBuffer
from trainables.models.fusion.scores import action_alphas
from trainables.models.fusion.state import NUM_STATE_FEATURES

__all__ = ["DQNConfig", "FusionAgent", "QNetwork", "TargetUpdate"]

TargetUpdate = Literal["hard", "soft"]


@dataclass(frozen=True)
class DQNConfig:
    """Hyperparameters of a `FusionAgent`.

    Args:
        hidden_channels: Widths of the Q-network's hidden layers. Default (128, 64).
        num_actions: Number of fusion weights, `linspace(0, 1, num_actions)`. Default 21.
        learning_rate: Adam learning rate. Default 1e-3.
        gamma: Discount factor. Default 0.9 (irrelevant for one-step episodes, `dones=True`).
        epsilon_start: Exploration rate before any learning step. Default 1.0.
        epsilon_end: Floor of the exploration rate. Default 0.05.
        epsilon_decay: Factor applied to epsilon per learning step. Default 0.995.
        buffer_capacity: Transitions kept in the replay buffer. Default 50_000.
        batch_size: Transitions per learning step. Default 128.
        target_update: "hard" copies the Q-network every `target_update_interval` steps;
            "soft" moves the target by `tau` towards it every step. Default "hard".
        target_update_interval: Learning steps between hard updates. Default 100.
        tau: Soft-update rate. Default 0.005.
        max_grad_norm: Gradient-norm clip of a learning step. Default 10.0.

    Example:
        >>> DQNConfig.preset("student").hidden_channels
        (32, 16)
    """

    hidden_channels: tuple[int, ...] = (128, 64)
    num_actions: int = 21
    learning_rate: float = 1e-3
    gamma: float = 0.9
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay: float = 0.995
    buffer_capacity: int = 50_000
    batch_size: int = 128
    target_update: TargetUpdate = "hard"
    target_update_interval: int = 100
    tau: float = 0.005
    max_grad_norm: float = 10.0

    def __post_init__(self) -> None:
        if not self.hidden_channels or min(self.hidden_channels) < 1:
            raise UserError(f"DQN hidden_channels must be positive, got {self.hidden_channels}")
        if self.num_actions < 2:
            raise UserError(f"DQN num_actions must be >= 2, got {self.num_actions}")
        if not 0.0 <= self.gamma <= 1.0:
            raise UserError(f"DQN gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 <= self.epsilon_end <= self.epsilon_start <= 1.0:
            raise UserError(
                "DQN needs 0 <= epsilon_end <= epsilon_start <= 1, got"
                f" epsilon_start={self.epsilon_start}, epsilon_end={self.epsilon_end}"
            )
        if not 0.0 < self.epsilon_decay <= 1.0:
            raise UserError(f"DQN epsilon_decay must be in (0, 1], got {self.epsilon_decay}")
        if self.target_update not in ("hard", "soft"):
            raise UserError(
                f"DQN target_update must be 'hard' or 'soft', got {self.target_update!r}"
            )
        if not 0.0 < self.tau <= 1.0:
            raise UserError(f"DQN tau must be in (0, 1], got {self.tau}")
        for name in ("buffer_capacity", "batch_size", "target_update_interval"):
            if getattr(self, name) < 1:
                raise UserError(f"DQN {name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.max_grad_norm <= 0:
            raise UserError(
                "DQN learning_rate and max_grad_norm must be > 0, got"
                f" learning_rate={self.learning_rate}, max_grad_norm={self.max_grad_norm}"
            )

    @classmethod
    def preset(cls, size: ModelSize | str) -> DQNConfig:
        """Teacher: hidden (128, 64); student: hidden (32, 16), buffer 10_000, batch 64.

        Raises:
            UserError: `size` is neither "teacher" nor "student".
        """
        if check_model_size(size) == "teacher":
            return cls()
        return cls(hidden_channels=(32, 16), buffer_capacity=10_000, batch_size=64)


class QNetwork(nn.Module):
    """MLP from a fusion state to one Q-value per action.

    Args:
        state_dim: Width of a state. Default 15 (`NUM_STATE_FEATURES`).
        hidden_channels: Hidden layer widths.
        num_actions: Number of actions.

    Example:
        >>> QNetwork(hidden_channels=(8,), num_actions=3)(torch.zeros(2, 15)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self,
        *,
        hidden_channels: tuple[int, ...],
        num_actions: int,
        state_dim: int = NUM_STATE_FEATURES,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = state_dim
        for hidden in hidden_channels:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, num_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, states: Tensor) -> Tensor:
        """Q-values, `[B, num_actions]`."""
        return self.net(states)


class FusionAgent:
    """DQN over fusion weights: epsilon-greedy actions, tensor replay buffer, target network.

    Each action `i` is a weight `alphas[i]` of the GAT in `fuse_scores`. One training step of
    the trainer, per batch of graphs: `state = fusion_state(...)`, `actions = agent.act(state)`,
    `fused = fuse_scores(scale(vgae_raw), gat_prob, agent.alphas[actions])`,
    `rewards = fusion_reward(fused, labels)`, `agent.remember(state, actions, rewards, state,
    dones=ones)` (each graph is a one-step episode), then `agent.learn_step()`. Epsilon decays
    by `epsilon_decay` per learning step, down to `epsilon_end`. Save `agent.q_network`'s state
    dict; at inference `agent.act(state, explore=False)` is the greedy choice.

    Args:
        config: Hyperparameters; see `DQNConfig.preset`.
        state_dim: Width of a state. Default 15.
        seed: Seeds the network initialisation, exploration and replay sampling. Default None.
        device: Where the networks and buffer live. Default "cpu".

    Example:
        >>> agent = FusionAgent(DQNConfig.preset("student"), seed=0)
        >>> agent.act(torch.zeros(4, 15)).shape, agent.epsilon
        (torch.Size([4]), 1.0)
    """

    def __init__(
        self,
        config: DQNConfig,
        *,
        state_dim: int = NUM_STATE_FEATURES,
        seed: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=self.generator)))
            self.q_network = QNetwork(
                hidden_channels=config.hidden_channels,
                num_actions=config.num_actions,
                state_dim=state_dim,
            ).to(self.device)
        self.target_network = copy.deepcopy(self.q_network).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q_network.parameters(), lr=config.learning_rate)
        self.buffer = ReplayBuffer(config.buffer_capacity, state_dim, device=self.device)
        self.alphas = action_alphas(config.num_actions).to(self.device)
        self.num_learn_steps = 0

    @property
    def epsilon(self) -> float:
        """Current exploration rate: `max(end, start * decay ** num_learn_steps)`."""
        c = self.config
        return max(c.epsilon_end, c.epsilon_start * c.epsilon_decay**self.num_learn_steps)

    def act(self, states: Tensor, *, explore: bool = True) -> Tensor:
        """Choose an action per state: greedy, or uniform with probability `epsilon`.

        Args:
            states: `[B, state_dim]`.
            explore: Whether to explore; False is the greedy (inference) choice. Default True.

        Returns:
            int64 `[B]` action indices; `agent.alphas[actions]` are the fusion weights.
        """
        with torch.no_grad():
            actions = self.q_network(states.to(self.device)).argmax(dim=1)
        if explore:
            num = actions.size(0)
            is_random = torch.rand(num, generator=self.generator) < self.epsilon
            random = torch.randint(self.config.num_actions, (num,), generator=self.generator)
            actions = torch.where(is_random.to(self.device), random.to(self.device), actions)
        return actions

    def remember(
        self,
        states: Tensor,
        actions: Tensor,
        rewards: Tensor,
        next_states: Tensor,
        dones: Tensor,
    ) -> None:
        """Store a batch of transitions in the replay buffer (see `ReplayBuffer.push`)."""
        self.buffer.push(states, actions, rewards, next_states, dones)

    def learn_step(self) -> float | None:
        """One DQN update on a replayed batch; None (no update) until a batch is stored.

        The target is `r + gamma * max_a Q_target(s', a)` (`r` alone where `done`), the loss
        Huber, the gradient clipped to `max_grad_norm`; the target network is then updated.

        Returns:
            The loss, or None when the buffer holds fewer than `batch_size` transitions.
        """
        c = self.config
        if len(self.buffer) < c.batch_size:
            return None
        batch = self.buffer.sample(c.batch_size, generator=self.generator)
        q = self.q_network(batch.states).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            next_q = self.target_network(batch.next_states).amax(dim=1)
            target = batch.rewards + c.gamma * next_q * (~batch.dones).float()
        loss = F.smooth_l1_loss(q, target)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.q_network.parameters(), c.max_grad_norm)
        self.optimizer.step()
        self.num_learn_steps += 1
        if c.target_update == "soft":
            self.soft_update_target(c.tau)
        elif self.num_learn_steps % c.target_update_interval == 0:
            self.sync_target()
        return loss.item()

    def sync_target(self) -> None:
        """Copy the Q-network's weights into the target network."""
        self.target_network.load_state_dict(self.q_network.state_dict())

    def soft_update_target(self, tau: float) -> None:
        """Move each target weight by `tau` towards the Q-network's: `t += tau * (q - t)`."""
        with torch.no_grad():
            for t, q in zip(
                self.target_network.parameters(), self.q_network.parameters(), strict=True
            ):
                t.lerp_(q, tau)
