from __future__ import annotations

from typing import Any

import pytest
import torch
from torch_geometric.data import Batch

from trainables.batching.heaviest import largest_first
from trainables.batching.tuner import TunerSettings, probe_max_batch_size
from trainables.batching.tuner.training_state import configured_optimizers, fill_optimizer_state
from trainables.data import CANGraphDataModule, CANGraphDataset
from trainables.models import GATClassifier, GATConfig
from trainables.modes import ClassifierModule


class Watching(ClassifierModule):
    """Records, at every step it runs, whether what a run's later steps have beside them was
    there: its optimiser's state, and a gradient for every trained parameter."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__(GATClassifier(GATConfig.preset("student", vocab_size=vocab_size)))
        self.optimizer: torch.optim.Optimizer | None = None  # the last one configured
        self.seen: list[tuple[bool, bool]] = []

    def configure_optimizers(self) -> Any:
        self.optimizer = super().configure_optimizers()
        return self.optimizer

    def _see(self) -> None:
        assert self.optimizer is not None
        grads = all(p.grad is not None for p in self.parameters() if p.requires_grad)
        self.seen.append((bool(self.optimizer.state), grads))

    def training_loss(self, batch: Batch) -> torch.Tensor:
        self._see()
        return super().training_loss(batch)

    def validation_outputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        self._see()
        return super().validation_outputs(batch)


@pytest.fixture
def graphs(data: CANGraphDataModule) -> CANGraphDataset:
    assert data.train_set is not None
    return largest_first(data.train_set.graphs.select(data.train_set.indices()))


def test_every_probed_training_step_has_the_optimiser_state_and_gradients_beside_it(
    data: CANGraphDataModule, graphs: CANGraphDataset
) -> None:
    # Adam allocates its state in its first step, after the backward pass: a probe that is a
    # fresh optimiser's first step would measure less than a run's later steps hold.
    assert data.vocab is not None
    module = Watching(len(data.vocab))
    # Capped below the set: Lightning's search doubles to the cap, which the tuner runs itself.
    found = probe_max_batch_size(
        module, graphs, for_eval=False, settings=TunerSettings(max_val=16)
    )
    assert found == 16 and len(module.seen) >= 4
    assert module.seen == [(True, True)] * len(module.seen)


def test_every_probed_evaluation_step_has_them_too_and_lets_them_go_after(
    data: CANGraphDataModule, graphs: CANGraphDataset
) -> None:
    # A run validates (and tests) with its optimiser's state and last gradients allocated.
    assert data.vocab is not None
    module = Watching(len(data.vocab))
    found = probe_max_batch_size(module, graphs, for_eval=True, settings=TunerSettings(max_val=16))
    assert found == 16
    assert module.seen and module.seen == [(True, True)] * len(module.seen)
    assert module.optimizer is not None and not module.optimizer.state
    assert all(p.grad is None for p in module.parameters())


def test_fill_optimizer_state_allocates_once_and_moves_nothing() -> None:
    layer = torch.nn.Linear(4, 3)
    frozen = torch.nn.Linear(4, 3).requires_grad_(False)
    before = [p.detach().clone() for p in layer.parameters()]
    optimizer = torch.optim.Adam([*layer.parameters(), *frozen.parameters()], lr=0.1)
    assert fill_optimizer_state(optimizer)
    for parameter, old in zip(layer.parameters(), before, strict=True):
        assert torch.equal(parameter, old)  # zero gradients, no weight decay: no move
        assert parameter.grad is not None and not parameter.grad.any()
        assert set(optimizer.state[parameter]) >= {"exp_avg", "exp_avg_sq"}
    assert all(p.grad is None and p not in optimizer.state for p in frozen.parameters())
    assert not fill_optimizer_state(optimizer)  # it has state: left as it is


@pytest.mark.parametrize(
    "form",
    [
        lambda o: o,
        lambda o: [o],
        lambda o: {"optimizer": o, "lr_scheduler": torch.optim.lr_scheduler.StepLR(o, 1)},
        lambda o: ([o], [torch.optim.lr_scheduler.StepLR(o, 1)]),
    ],
    ids=["optimizer", "list", "dict", "lists"],
)
def test_configured_optimizers_reads_lightnings_forms(form: Any) -> None:
    class Module(ClassifierModule):
        def configure_optimizers(self) -> Any:
            return form(super().configure_optimizers())

    module = Module(GATClassifier(GATConfig.preset("student", vocab_size=8)))
    [optimizer] = configured_optimizers(module)
    assert isinstance(optimizer, torch.optim.Adam)
