"""`FusionPolicy`: the learnt fusion, all that inference needs (Q-network, score scale, alphas)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from trainables.errors import UserError
from trainables.models import (
    DQNConfig,
    QNetwork,
    ScoreScale,
    action_alphas,
    fuse_scores,
    state_scores,
)

__all__ = ["FusionPolicy"]


class FusionPolicy(nn.Module):
    """The learnt fusion, all that inference needs: Q-network, VGAE score scale and alphas.

    Its state dict holds the Q-network's weights, the fitted `ScoreScale` bounds (`scale_low`,
    `scale_high`; NaN until fitted) and the `alphas`; `config` rebuilds the shapes.

    Args:
        config: Shape of the Q-network and number of actions.
        q_network: The Q-network to hold (default: a fresh one shaped by `config`).

    Example:
        >>> policy = FusionPolicy(DQNConfig.preset("student"))
        >>> policy.set_scale(ScoreScale(low=0.0, high=2.0))
        >>> policy(torch.rand(3, 15)).shape
        torch.Size([3])
    """

    config: DQNConfig
    q_network: QNetwork
    scale_low: Tensor
    scale_high: Tensor
    alphas: Tensor

    def __init__(self, config: DQNConfig, *, q_network: QNetwork | None = None) -> None:
        super().__init__()
        self.config = config
        self.q_network = q_network or QNetwork(
            hidden_channels=config.hidden_channels, num_actions=config.num_actions
        )
        self.register_buffer("alphas", action_alphas(config.num_actions))
        self.register_buffer("scale_low", torch.tensor(math.nan))
        self.register_buffer("scale_high", torch.tensor(math.nan))

    @property
    def has_scale(self) -> bool:
        """Whether the VGAE score scale was fitted (or loaded)."""
        return bool(torch.isfinite(self.scale_low) & torch.isfinite(self.scale_high))

    @property
    def scale(self) -> ScoreScale:
        """The VGAE score scale the alphas were learnt with.

        Raises:
            UserError: The scale was never fitted nor loaded.
        """
        if not self.has_scale:
            raise UserError(
                "the fusion policy has no VGAE score scale: fit it (FusionModule does at the "
                "start of training) or load a trained policy's state dict"
            )
        return ScoreScale(low=float(self.scale_low), high=float(self.scale_high))

    def set_scale(self, scale: ScoreScale) -> None:
        """Store `scale` in the buffers (and so in the state dict)."""
        self.scale_low.fill_(scale.low)
        self.scale_high.fill_(scale.high)

    def greedy_actions(self, states: Tensor) -> Tensor:
        """The action of highest Q-value per state, int64 `[G]`."""
        with torch.no_grad():
            return self.q_network(states).argmax(dim=1)

    def fuse(self, states: Tensor, actions: Tensor) -> Tensor:
        """Fused attack score `[G]` in [0, 1] of taking `actions` in `states`."""
        vgae_score, gat_probability = state_scores(states)
        return fuse_scores(self.scale(vgae_score), gat_probability, self.alphas[actions])

    def forward(self, states: Tensor) -> Tensor:
        """Greedy fused attack score `[G]` in [0, 1] of `fusion_state` rows `[G, 15]`."""
        return self.fuse(states, self.greedy_actions(states))
