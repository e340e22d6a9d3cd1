"""`fusion` mode: a DQN agent learns, per graph, how far to trust a frozen GAT over a frozen VGAE.

Each graph is a one-step episode. The state is `fusion_state` (15 values from the two models),
an action is a GAT weight `alpha` in `linspace(0, 1, 21)`, the fused score is
`(1 - alpha) * scaled VGAE score + alpha * GAT attack probability`, the decision is
`fused >= 0.5`, and the reward is +1 for a right decision and -1 for a wrong one.
"""

from __future__ import annotations

from trainables.modes.fusion.module import FusionModule
from trainables.modes.fusion.policy import FusionPolicy
from trainables.modes.fusion.step import fusion_step, raw_vgae_scores

__all__ = ["FusionModule", "FusionPolicy", "fusion_step", "raw_vgae_scores"]
