"""The fusion algorithm as plain functions: raw VGAE scores (to fit the score scale on), and one
interaction of the agent with a batch of graphs followed by its DQN updates (`fusion_step`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainables.models import (
    VGAE,
    FusionAgent,
    ScoreScale,
    fuse_scores,
    fusion_reward,
    graph_anomaly_scores,
    state_scores,
)

__all__ = ["fusion_step", "raw_vgae_scores"]


def raw_vgae_scores(vgae: VGAE, loader: Any, *, device: torch.device | str = "cpu") -> Tensor:
    """The raw (unscaled) VGAE anomaly score of every graph of `loader`, on the CPU.

    Args:
        vgae: A trained VGAE, on `device`.
        loader: An iterable of graph batches (e.g. a PyG `DataLoader`).
        device: Where the batches are moved before scoring. Default "cpu".

    Returns:
        float `[num_graphs]`, the same score `state_scores` reads back from a fusion state.
    """
    scores = [graph_anomaly_scores(vgae, batch.to(device)).cpu() for batch in loader]
    return torch.cat(scores) if scores else torch.zeros(0)


def fusion_step(
    agent: FusionAgent,
    scale: ScoreScale,
    states: Tensor,
    labels: Tensor,
    *,
    num_learn_steps: int = 1,
    reward: float = 1.0,
    penalty: float = 1.0,
) -> tuple[float | None, float]:
    """One interaction of `agent` with a batch of graphs, then `num_learn_steps` DQN updates.

    Explore (epsilon-greedy) -> fuse the scaled VGAE score with the GAT probability ->
    reward each decision -> store the one-step transitions -> learn from replayed ones.

    Args:
        agent: The learning agent.
        scale: Normalisation of the raw VGAE score (`ScoreScale`).
        states: `fusion_state` rows `[G, 15]`.
        labels: Graph labels `[G]` (1 = attack).
        num_learn_steps: DQN updates after storing the batch. Default 1.
        reward: Reward of a right decision. Default 1.
        penalty: Amount subtracted for a wrong decision. Default 1.

    Returns:
        `(loss, mean_reward)`: the mean TD loss of the updates (None when the replay buffer
        was still too small for any), and the mean reward of the batch's decisions.

    Example:
        >>> from trainables.models import DQNConfig
        >>> agent = FusionAgent(DQNConfig(hidden_channels=(8,), batch_size=4), seed=0)
        >>> loss, mean_reward = fusion_step(agent, ScoreScale(0.0, 1.0), torch.rand(6, 15),
        ...                                 torch.tensor([0, 1, 0, 1, 0, 1]))
        >>> loss is not None and -1.0 <= mean_reward <= 1.0
        True
    """
    actions = agent.act(states)
    vgae_score, gat_probability = state_scores(states)
    fused = fuse_scores(scale(vgae_score), gat_probability, agent.alphas[actions])
    rewards = fusion_reward(fused, labels, reward=reward, penalty=penalty)
    dones = torch.ones_like(rewards, dtype=torch.bool)  # one-step episodes: no bootstrapping
    agent.remember(states, actions, rewards, states, dones)
    losses = [loss for _ in range(num_learn_steps) if (loss := agent.learn_step()) is not None]
    mean_loss = sum(losses) / len(losses) if losses else None
    return mean_loss, float(rewards.mean())
