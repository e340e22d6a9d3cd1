from __future__ import annotations

import pytest
import torch

from trainables.errors import UserError
from trainables.models.fusion.scores import (
    ScoreScale,
    action_alphas,
    fuse_scores,
    fusion_reward,
)


def test_action_alphas_are_21_steps_of_0_05() -> None:
    alphas = action_alphas()
    assert alphas.shape == (21,)
    assert torch.allclose(alphas, torch.arange(21) * 0.05)


def test_action_alphas_rejects_single_action() -> None:
    with pytest.raises(UserError, match="num_actions >= 2, got num_actions=1"):
        action_alphas(1)


def test_score_scale_fits_min_max_and_clips() -> None:
    scale = ScoreScale.fit(torch.tensor([2.0, 4.0, 6.0]))
    assert (scale.low, scale.high) == (2.0, 6.0)
    assert scale(torch.tensor([0.0, 3.0, 6.0, 100.0])).tolist() == [0.0, 0.25, 1.0, 1.0]


def test_score_scale_rejects_equal_bounds() -> None:
    with pytest.raises(UserError, match=r"finite low < high, got low=1\.0, high=1\.0"):
        ScoreScale.fit(torch.tensor([1.0, 1.0]))


def test_score_scale_rejects_no_scores() -> None:
    with pytest.raises(UserError, match="cannot fit a score scale on no scores"):
        ScoreScale.fit(torch.tensor([]))


def test_fuse_scores_matches_formula_per_graph() -> None:
    vgae = torch.tensor([0.9, 0.2, 0.6])
    gat = torch.tensor([0.1, 0.8, 0.5])
    alphas = action_alphas()[torch.tensor([0, 20, 6])]
    fused = fuse_scores(vgae, gat, alphas)
    assert torch.allclose(fused, (1 - alphas) * vgae + alphas * gat)
    assert torch.allclose(fused, torch.tensor([0.9, 0.8, 0.57]))


def test_fusion_reward_rewards_right_and_penalises_wrong_decisions() -> None:
    fused = torch.tensor([0.7, 0.2, 0.5, 0.49])
    labels = torch.tensor([1, 1, 0, 0])
    rewards = fusion_reward(fused, labels, reward=1.0, penalty=2.0)
    assert rewards.tolist() == [1.0, -2.0, -2.0, 1.0]


def test_fusion_reward_rejects_negative_penalty() -> None:
    with pytest.raises(UserError, match="penalty is subtracted and must be >= 0"):
        fusion_reward(torch.zeros(1), torch.zeros(1, dtype=torch.long), penalty=-1.0)
