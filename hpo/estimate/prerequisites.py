"""The models a mode builds on (kd's teacher, the VGAE of curriculum and fusion, fusion's GAT):
untrained stand-ins for the probe, and the time the study's driver takes to train them."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.estimate.arithmetic import LinearFit, steps_seconds
from hpo.estimate.steps import Device, quiet_data_logs, trial_datamodule

if TYPE_CHECKING:
    from search_spaces.base import SearchSpace
    from trainables.data.source import GraphSource

__all__ = ["PREREQUISITE_BATCH_SIZE", "prerequisite_seconds", "stand_ins"]

PREREQUISITE_BATCH_SIZE = 64  # they train untuned, at the datamodule's default


def stand_ins(
    space: SearchSpace, source: GraphSource, root: Path, *, seed: int
) -> dict[str, Path]:
    """Untrained checkpoints of the prerequisites (a step costs the same whatever the weights)."""
    import torch

    from hpo.prepare import prerequisite_needs
    from trainables.data.source import load_split
    from trainables.models import VGAE, GATClassifier, GATConfig, VGAEConfig

    needs = prerequisite_needs(space)
    if not needs:
        return {}
    with quiet_data_logs():
        vocab_size = len(load_split(source, "train").vocab)
    torch.manual_seed(seed)
    paths = {}
    for role, (mode, size) in needs.items():
        preset: dict = dict(vocab_size=vocab_size)
        model = (
            VGAE(VGAEConfig.preset(size, **preset))  # type: ignore[arg-type]
            if mode == "autoencoder"
            else GATClassifier(GATConfig.preset(size, **preset))  # type: ignore[arg-type]
        )
        folder = root / "checkpoints" / role
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), folder / "model.pt")
        (folder / "config.json").write_text(json.dumps({"mode": mode, "size": size}))
        paths[role] = folder
    return paths


def prerequisite_seconds(
    mode: str, size: str, space: SearchSpace, source: GraphSource, root: Path, *, seed: int,
    device: Device,
) -> tuple[float, LinearFit]:  # fmt: skip
    """Seconds to train one prerequisite as `hpo.prepare` does (the space's epochs at batch 64,
    no budget), and its evaluation step (a VGAE scores curriculum's and fusion's graphs)."""
    from hpo.estimate.model_probe import probe_model
    from hpo.prepare import prerequisite_config
    from trainables.training.prerequisites import module_factory

    tick = time.perf_counter()
    config = prerequisite_config(mode, size, space, source, seed=seed, out_dir=root / "runs")
    datamodule = trial_datamodule(config)
    make_module = module_factory(config, len(datamodule.vocab), root, {})
    setup = time.perf_counter() - tick
    train, val = datamodule.train_set, datamodule.val_set
    batch = PREREQUISITE_BATCH_SIZE
    model = probe_model(
        make_module, train, val, device=device, seed=seed, max_step=math.inf, sizes=[batch],
        in_budget=False,
    )  # fmt: skip
    epoch = steps_seconds(len(train), batch, model.train_step)
    epoch += steps_seconds(len(val), batch, model.eval_step) + model.eval_overhead_seconds
    test = sum(
        steps_seconds(len(d), batch, model.eval_step) for d in datamodule.test_sets.values()
    )
    test += model.eval_overhead_seconds if datamodule.test_sets else 0.0
    return setup + model.fit_overhead_seconds + space.epochs * epoch + test, model.eval_step
