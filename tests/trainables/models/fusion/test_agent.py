from __future__ import annotations

import pytest
import torch

from trainables.errors import UserError
from trainables.models.fusion.agent import DQNConfig, FusionAgent, QNetwork


def _small_config(**overrides: object) -> DQNConfig:
    values: dict[str, object] = {
        "hidden_channels": (16,),
        "buffer_capacity": 64,
        "batch_size": 8,
        "learning_rate": 1e-2,
    }
    values.update(overrides)
    return DQNConfig(**values)  # type: ignore[arg-type]


def _fill(agent: FusionAgent, count: int) -> None:
    states = torch.rand(count, 15)
    actions = torch.randint(21, (count,))
    rewards = torch.where(actions == 3, 1.0, -1.0)
    agent.remember(states, actions, rewards, states, torch.ones(count, dtype=torch.bool))


def test_dqn_config_preset_teacher_and_student() -> None:
    assert DQNConfig.preset("teacher").hidden_channels == (128, 64)
    assert DQNConfig.preset("student").batch_size == 64


def test_dqn_config_preset_rejects_unknown_size() -> None:
    with pytest.raises(UserError, match="unknown model size 'huge'"):
        DQNConfig.preset("huge")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epsilon_end", 0.5, "epsilon_end <= epsilon_start"),
        ("epsilon_start", 1.5, "epsilon_end <= epsilon_start <= 1"),
        ("epsilon_decay", 0.0, r"epsilon_decay must be in \(0, 1\]"),
        ("gamma", 1.5, r"gamma must be in \[0, 1\]"),
        ("target_update", "sometimes", "target_update must be 'hard' or 'soft'"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("num_actions", 1, "num_actions must be >= 2"),
    ],
)
def test_dqn_config_rejects_bad_value(field: str, value: object, message: str) -> None:
    values: dict[str, object] = {field: value}
    if field == "epsilon_end":
        values["epsilon_start"] = 0.2
    with pytest.raises(UserError, match=message):
        DQNConfig(**values)  # type: ignore[arg-type]


def test_q_network_maps_states_to_action_values() -> None:
    net = QNetwork(hidden_channels=(8, 4), num_actions=21)
    assert net(torch.zeros(3, 15)).shape == (3, 21)


def test_fusion_agent_epsilon_decays_per_learn_step_to_floor() -> None:
    agent = FusionAgent(_small_config(epsilon_decay=0.5, epsilon_end=0.1), seed=0)
    assert agent.epsilon == 1.0
    _fill(agent, 8)
    epsilons = []
    for _ in range(5):
        agent.learn_step()
        epsilons.append(agent.epsilon)
    assert epsilons == [0.5, 0.25, 0.125, 0.1, 0.1]


def test_fusion_agent_learn_step_waits_for_a_full_batch() -> None:
    agent = FusionAgent(_small_config(), seed=0)
    _fill(agent, 7)
    assert agent.learn_step() is None
    assert agent.num_learn_steps == 0
    _fill(agent, 1)
    loss = agent.learn_step()
    assert loss is not None and loss >= 0
    assert agent.num_learn_steps == 1


def test_fusion_agent_act_explores_with_full_epsilon_and_is_greedy_without() -> None:
    agent = FusionAgent(_small_config(), seed=0)
    states = torch.rand(200, 15)
    explored = agent.act(states)
    assert explored.shape == (200,)
    assert explored.dtype == torch.long
    assert len(set(explored.tolist())) > 10  # epsilon = 1: uniform over the 21 actions
    greedy = agent.act(states, explore=False)
    assert torch.equal(greedy, agent.q_network(states).argmax(dim=1))
    assert agent.alphas[greedy].shape == (200,)


def test_fusion_agent_hard_update_syncs_target_every_interval() -> None:
    agent = FusionAgent(_small_config(target_update_interval=3), seed=0)
    _fill(agent, 16)

    def same() -> bool:
        return all(
            torch.equal(t, q)
            for t, q in zip(
                agent.target_network.state_dict().values(),
                agent.q_network.state_dict().values(),
                strict=True,
            )
        )

    assert same()
    agent.learn_step()
    agent.learn_step()
    assert not same()
    agent.learn_step()
    assert same()


def test_fusion_agent_soft_update_moves_target_by_tau() -> None:
    agent = FusionAgent(_small_config(target_update="soft", tau=0.25), seed=0)
    before = [p.clone() for p in agent.target_network.parameters()]
    _fill(agent, 16)
    agent.learn_step()
    for old, target, online in zip(
        before, agent.target_network.parameters(), agent.q_network.parameters(), strict=True
    ):
        assert torch.allclose(target, old + 0.25 * (online - old), atol=1e-6)


def test_fusion_agent_sync_target_copies_weights() -> None:
    agent = FusionAgent(_small_config(), seed=0)
    with torch.no_grad():
        for p in agent.q_network.parameters():
            p.add_(1.0)
    agent.sync_target()
    for t, q in zip(agent.target_network.parameters(), agent.q_network.parameters(), strict=True):
        assert torch.equal(t, q)
    assert not any(p.requires_grad for p in agent.target_network.parameters())


def test_fusion_agent_same_seed_same_network() -> None:
    a = FusionAgent(_small_config(), seed=7)
    b = FusionAgent(_small_config(), seed=7)
    for p, q in zip(a.q_network.parameters(), b.q_network.parameters(), strict=True):
        assert torch.equal(p, q)


def test_fusion_agent_learns_the_rewarded_action() -> None:
    torch.manual_seed(0)
    agent = FusionAgent(_small_config(buffer_capacity=256, batch_size=32), seed=0)
    _fill(agent, 256)
    for _ in range(150):
        agent.learn_step()
    greedy = agent.act(torch.rand(20, 15), explore=False)
    assert (greedy == 3).all()
