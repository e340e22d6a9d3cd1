from __future__ import annotations

import pytest
import torch

from trainables.models import DQNConfig, FusionAgent, ScoreScale
from trainables.modes.fusion import FusionPolicy, fusion_step


def _bandit_states(num: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """States whose GAT probability is always right and whose VGAE score always wrong."""
    labels = torch.randint(2, (num,), generator=generator)
    states = torch.rand(num, 15, generator=generator) * 0.1
    states[:, 0] = 1.0 - labels.float()  # raw VGAE score: high on normal graphs
    states[:, 9] = 0.1 + 0.8 * labels.float()  # GAT attack probability
    return states, labels


def test_fusion_step_returns_no_loss_until_the_buffer_holds_a_batch() -> None:
    agent = FusionAgent(DQNConfig(hidden_channels=(8,), batch_size=16), seed=0)
    states, labels = _bandit_states(8, torch.Generator().manual_seed(0))
    loss, mean_reward = fusion_step(agent, ScoreScale(0.0, 1.0), states, labels)
    assert loss is None and agent.num_learn_steps == 0
    assert mean_reward in {x / 8 for x in range(-8, 9, 2)}
    loss, _ = fusion_step(agent, ScoreScale(0.0, 1.0), states, labels, num_learn_steps=3)
    assert loss is not None and agent.num_learn_steps == 3


def test_fusion_step_reward_is_that_of_the_fused_decision() -> None:
    # epsilon 0: always the greedy action; reward 2, penalty 0.5.
    config = DQNConfig(hidden_channels=(8,), epsilon_start=0.0, epsilon_end=0.0)
    agent = FusionAgent(config, seed=0)
    states, labels = _bandit_states(32, torch.Generator().manual_seed(1))
    alphas = agent.alphas[agent.act(states, explore=False)]
    fused = (1 - alphas) * states[:, 0] + alphas * states[:, 9]
    right = ((fused >= 0.5).long() == labels).float()
    expected = float((2.0 * right - 0.5 * (1 - right)).mean())
    _, mean_reward = fusion_step(
        agent, ScoreScale(0.0, 1.0), states, labels, reward=2.0, penalty=0.5
    )
    assert mean_reward == pytest.approx(expected)


def test_fusion_step_learns_to_trust_the_right_model() -> None:
    config = DQNConfig(
        hidden_channels=(16,), batch_size=64, learning_rate=1e-2, epsilon_decay=0.98
    )
    agent = FusionAgent(config, seed=0)
    generator = torch.Generator().manual_seed(2)
    for _ in range(60):
        fusion_step(agent, ScoreScale(0.0, 1.0), *_bandit_states(64, generator), num_learn_steps=2)
    states, labels = _bandit_states(256, generator)
    policy = FusionPolicy(config, q_network=agent.q_network)
    policy.set_scale(ScoreScale(0.0, 1.0))
    decisions = (policy(states) >= 0.5).long()
    assert float((decisions == labels).float().mean()) > 0.95
