from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tests.trainables.modes.fusion._fitting import FittedRun, val_batches
from trainables.errors import UserError
from trainables.models import DQNConfig, load_weights
from trainables.modes.fusion import FusionModule, FusionPolicy


def test_fusion_policy_state_dict_round_trips_to_identical_decisions(
    fitted: FittedRun, tmp_path: Path
) -> None:
    module = fitted.module.eval()
    state = module.model.state_dict()
    assert not [k for k in state if k.startswith(("vgae", "gat", "target"))]
    assert {"alphas", "scale_low", "scale_high"} <= state.keys()
    torch.save(state, tmp_path / "model.pt")
    assert dataclasses.asdict(module.model.config)["num_actions"] == 21

    fresh = FusionModule(module.vgae, module.gat, size="student", seed=1).eval()
    load_weights(fresh.model, tmp_path / "model.pt")
    for batch in val_batches(fitted):
        states = module.states(batch)
        assert torch.equal(fresh.model.greedy_actions(states), module.model.greedy_actions(states))
        assert torch.equal(fresh.attack_score(batch), module.attack_score(batch))


def test_fusion_policy_without_scale_raises() -> None:
    policy = FusionPolicy(DQNConfig.preset("student"))
    assert not policy.has_scale
    with pytest.raises(UserError, match="no VGAE score scale"):
        policy(torch.rand(2, 15))
