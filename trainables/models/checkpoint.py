"""`load_weights`: load a saved state dict into a model, with a clear error on mismatch."""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor, nn

from trainables.errors import UserError

__all__ = ["load_weights"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_MAX_NAMED = 5


def _named(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_NAMED])
    more = len(keys) - _MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _mismatches(model: nn.Module, state: Mapping[str, Tensor]) -> list[str]:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} in the file vs {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_named(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_named(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch: {_named(shapes)}")
    return problems


def load_weights(model: ModuleT, path: str | os.PathLike[str]) -> ModuleT:
    """Load a `torch.save(model.state_dict(), path)` file into `model`, strictly.

    The file is read with `weights_only=True` (no arbitrary unpickling) onto the CPU; the
    values are then copied onto the model's own device by `load_state_dict`.

    Args:
        model: The model to fill; built with the same config as the one that was saved.
        path: The state-dict file.

    Returns:
        `model`, for chaining.

    Raises:
        UserError: The file is missing, is not a weights-only state dict, or does not match
            the model (missing or unexpected keys, or shape mismatches, each named).

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> with tempfile.TemporaryDirectory() as d:
        ...     torch.save(nn.Linear(2, 1).state_dict(), f"{d}/w.pt")
        ...     isinstance(load_weights(nn.Linear(2, 1), f"{d}/w.pt"), nn.Linear)
        True
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"checkpoint {file} does not exist; check the path")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        KeyError,  # text, not a pickle: torch reads its first byte as an opcode
        struct.error,  # a few bytes, not a pickle
    ) as error:
        # torch's own message runs to paragraphs of advice on weights_only; its first line is
        # the part that says what failed.
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise UserError(
            f"checkpoint {file} is not a weights-only state dict ({reason});"
            " save it with torch.save(model.state_dict(), path)"
        ) from error
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise UserError(
            f"checkpoint {file} holds a {type(state).__name__}, not a state dict of tensors;"
            " save it with torch.save(model.state_dict(), path)"
        )
    problems = _mismatches(model, state)
    if problems:
        raise UserError(
            f"checkpoint {file} does not match {type(model).__name__}: {'; '.join(problems)}."
            " Build the model with the config (size, vocab_size) it was trained with"
        )
    model.load_state_dict(state, strict=True)
    return model
