"""What a training step has beside it, present in every probed step: optimiser state and gradients.

A probed step is the first step of a fresh optimiser. Adam allocates its state (two tensors the
size of every trained parameter) in its first `step`, after the backward pass has freed the
activations; the gradients are allocated during that backward pass. From the second step of a run
on, both are there through the whole forward and backward pass, and at the end of every epoch
while validation runs, and in testing after it. A probe without them measures a step lighter by
three times the trained parameters: a maximum that the first step of a run passes and later steps
exceed. (The teacher GAT, 4.9 MiB of parameters, at a 64 MiB budget: the tuner found 12, and a run
at 12 ran out of memory in its second epoch.)

Every probed step therefore starts without them (`clear_training_state`, before its memory is
measured) and allocates them first thing (`fill_optimizer_state`; for evaluation,
`hold_training_state` builds the optimisers the module configures): each step's measured peak
holds them, whichever of Lightning's loop or the tuner's own steps ran it. `TrainingState` does
it for a `Trainer` the tuner runs itself; Lightning's search turns callbacks off, so its hooked
steps call the functions directly (`trainables.batching.tuner.bracket.search_hooks`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from torch.optim import Optimizer

__all__ = [
    "TrainingState",
    "clear_training_state",
    "configured_optimizers",
    "fill_optimizer_state",
    "hold_training_state",
]


class TrainingState(pl.Callback):
    """Allocate the optimiser state and gradients a run's steps have beside them, first thing in
    a probed `fit` (`on_train_start`) or a standalone `validate` (held until it ends)."""

    def __init__(self) -> None:
        self._held = contextlib.ExitStack()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for optimizer in trainer.optimizers:
            fill_optimizer_state(optimizer)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.training:  # inside fit, the training probe's own optimiser is there
            self._held.close()
            self._held.enter_context(hold_training_state(pl_module))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._held.close()


def fill_optimizer_state(optimizer: Optimizer) -> bool:
    """Allocate `optimizer`'s state and its parameters' gradients, as after a step.

    Gradients are zeros where there are none; one `step` on them makes the optimiser allocate its
    state (Adam: two tensors per parameter, zeros). The step moves no parameter without weight
    decay; the module is a probe's, thrown away after.

    Returns:
        True if it did, False where the optimiser already had state (left as it is).
    """
    if optimizer.state:
        return False
    for parameter in _trained(optimizer):
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    return True


def clear_training_state(module: torch.nn.Module, optimizers: Iterable[Optimizer] = ()) -> None:
    """Free `optimizers`' state and `module`'s gradients, so that the next step allocates them
    inside its measured peak."""
    for optimizer in optimizers:
        optimizer.state.clear()
    module.zero_grad(set_to_none=True)


@contextlib.contextmanager
def hold_training_state(module: pl.LightningModule) -> Iterator[None]:
    """The optimisers `module` configures, with their state and gradients allocated, for the
    length of the block (an evaluation probe: a run evaluates with them allocated)."""
    optimizers = configured_optimizers(module)
    for optimizer in optimizers:
        fill_optimizer_state(optimizer)
    try:
        yield
    finally:
        clear_training_state(module, optimizers)


def configured_optimizers(module: pl.LightningModule) -> list[Optimizer]:
    """The optimisers `module.configure_optimizers()` returns, in any of Lightning's forms (one
    optimiser, a list or tuple of them, a dict with `"optimizer"`, or lists of optimisers and
    schedulers)."""
    return list(_optimizers_in(module.configure_optimizers()))


def _optimizers_in(value: Any) -> Iterator[Optimizer]:
    if isinstance(value, Optimizer):
        yield value
    elif isinstance(value, dict):
        yield from _optimizers_in(value.get("optimizer"))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _optimizers_in(item)


def _trained(optimizer: Optimizer) -> Iterator[torch.Tensor]:
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            if parameter.requires_grad:
                yield parameter
