from __future__ import annotations

import torch
from torch import nn

from trainables.models.inference import evaluating


def test_evaluating_restores_each_submodule_mode() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    net[0].eval()  # a caller froze part of the model
    with evaluating(net):
        assert not any(m.training for m in net.modules())
    assert net.training
    assert not net[0].training
    assert net[1].training


def test_evaluating_disables_gradients() -> None:
    net = nn.Linear(2, 1)
    with evaluating(net):
        out = net(torch.ones(1, 2))
    assert not out.requires_grad


def test_evaluating_restores_mode_after_error() -> None:
    net = nn.Dropout(0.5).train()
    try:
        with evaluating(net):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert net.training
