"""The names of modes and out-of-memory stages: light to import (no torch), for CLIs and Ray."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["MODEL_SIZE_NAMES", "MODES", "OOM_STAGES", "PREREQUISITES", "Mode", "OomStage"]

Mode = Literal["normal", "autoencoder", "curriculum", "kd", "fusion"]
MODES: tuple[Mode, ...] = get_args(Mode)
OomStage = Literal["tuner", "train", "validation", "test"]
OOM_STAGES: tuple[OomStage, ...] = get_args(OomStage)
MODEL_SIZE_NAMES = ("teacher", "student")  # trainables.models.MODEL_SIZES, without torch
PREREQUISITES: dict[str, tuple[str, ...]] = {
    "kd": ("teacher",),
    "curriculum": ("vgae",),
    "fusion": ("vgae", "gat"),
}
"""The models a mode builds on, by role (`--teacher`, `--vgae`, `--gat`); other modes need none."""
