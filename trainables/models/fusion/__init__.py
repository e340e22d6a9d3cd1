"""DQN fusion of VGAE and GAT scores: state, score fusion and reward, replay buffer, agent."""

from trainables.models.fusion.agent import DQNConfig, FusionAgent, QNetwork, TargetUpdate
from trainables.models.fusion.replay import ReplayBuffer, Transitions
from trainables.models.fusion.scores import ScoreScale, action_alphas, fuse_scores, fusion_reward
from trainables.models.fusion.state import (
    NUM_STATE_FEATURES,
    STATE_FEATURES,
    fusion_state,
    state_scores,
)

__all__ = [
    "NUM_STATE_FEATURES",
    "STATE_FEATURES",
    "DQNConfig",
    "FusionAgent",
    "QNetwork",
    "ReplayBuffer",
    "ScoreScale",
    "TargetUpdate",
    "Transitions",
    "action_alphas",
    "fuse_scores",
    "fusion_reward",
    "fusion_state",
    "state_scores",
]
