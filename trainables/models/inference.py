"""`evaluating`: run modules in eval mode without autograd, restoring their modes after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["evaluating"]


@contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Put `modules` in eval mode under `torch.no_grad()`, and restore each one's mode after.

    Scores and fusion states must not depend on dropout or on the VGAE's latent sampling, and a
    caller in the middle of training must get its modules back in training mode.

    Args:
        *modules: The modules to evaluate with.

    Example:
        >>> from torch import nn
        >>> net = nn.Dropout(0.5).train()
        >>> with evaluating(net):
        ...     net.training
        False
        >>> net.training
        True
    """
    # Each submodule's own flag is restored, not just the root's: a caller may have frozen parts.
    modes = [(m, m.training) for module in modules for m in module.modules()]
    try:
        for module in modules:
            module.eval()
        with torch.no_grad():
            yield
    finally:
        for m, was_training in modes:
            m.training = was_training
