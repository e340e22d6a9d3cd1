"""Errors of a run replayed from its `config.json` (`--config`), naming the file's keys.

A replayed run is checked by the same code as a run from options, whose messages name the
options (`--epochs must be ...`); the value came from the file, so the message names the file
and the key that holds it (`--config runs/x/config.json: epochs must be ...`).
"""

from __future__ import annotations

from pathlib import Path

from trainables.data.options import SOURCE_OPTIONS
from trainables.errors import naming_keys

__all__ = ["CONFIG_KEYS", "naming_config_keys"]

CONFIG_KEYS: dict[str, str] = {
    "--mode": "mode",
    "--size": "size",
    "--epochs": "epochs",
    "--batch-size": "batch_sizes_per_epoch",
    "--eval-batch-size": "eval_batch_size",
    "--lr": "learning_rate",
    "--seed": "seed",
    "--val-fraction": "val_fraction",
    "--kd-temperature": "kd_temperature",
    "--kd-alpha": "kd_alpha",
    "--memory-budget": "memory_budget_bytes",
    "--teacher": "prerequisites.teacher",
    "--vgae": "prerequisites.vgae",
    "--gat": "prerequisites.gat",
    **{option: f"source.{field}" for option, field in SOURCE_OPTIONS.items()},
}
"""The option a check names -> the key of a run's `config.json` that replays it."""


def naming_config_keys(message: str, config_file: Path) -> str:
    """`message` of a check that names options, about values read from `config_file`: every
    option in it replaced by its key, and the file named first.

    Example:
        >>> naming_config_keys("--window must be an integer >= 2, got 1", Path("r/config.json"))
        '--config r/config.json: source.window must be an integer >= 2, got 1'
    """
    return f"--config {config_file}: {naming_keys(message, CONFIG_KEYS)}"
