"""What a study prepares once, in the driver, before any trial starts.

- The dataset: every split is read (or generated) and turned into graphs once, into the graph
  cache; trials then load it from there in milliseconds.
- The models the space's mode builds on (kd's teacher, the VGAE of curriculum and fusion, the GAT
  of fusion): trained once per study into `<study dir>/prerequisites/`, and shared by every trial,
  so trials differ only in what they search. A resumed study finds them there.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from search_spaces.base import SearchSpace
from trainables.data.source import GraphSource
from trainables.errors import UserError

if TYPE_CHECKING:
    from trainables.training.config import TrainConfig

__all__ = [
    "Prerequisites",
    "prepare_data",
    "prepare_prerequisites",
    "prerequisite_config",
    "prerequisite_needs",
]

logger = logging.getLogger("hpo.run")


@dataclass(frozen=True)
class Prerequisites:
    """Checkpoints (run directories) of the models a space's trials build on; None if unused."""

    teacher: Path | None = None
    vgae: Path | None = None
    gat: Path | None = None


def prepare_data(source: GraphSource, *, seed: int, mode: str) -> dict[str, int]:
    """Build (or load from the cache) every split of `source` once; return graph counts.

    Raises:
        UserError: The training split has nothing `mode` can train on (every trial would fail).
    """
    from trainables.data.datamodule import CANGraphDataModule
    from trainables.training.run import check_trainable, single_class

    start = time.perf_counter()
    datamodule = CANGraphDataModule(source, seed=seed)
    datamodule.setup("fit")
    assert datamodule.train_set is not None and datamodule.val_set is not None
    check_trainable(mode, source, datamodule.train_set.labels, num_val=len(datamodule.val_set))
    labels = datamodule.val_set.labels
    held = single_class(labels)
    if held is not None:
        # Every trial's val_f1 or val_auroc would be undefined: AUROC scored 0.0 on an
        # autoencoder study of attack-free captures, with a torchmetrics warning per trial.
        raise UserError(
            f"the validation split of {source.dataset_name} ({len(labels)} graphs) holds"
            f" {held} graphs only: a study's metric needs both; give captures with attacks"
            " and attack-free traffic"
        )
    counts = {
        "train": len(datamodule.train_set),
        "val": len(datamodule.val_set),
        **{f"test:{name}": len(split) for name, split in datamodule.test_sets.items()},
    }
    logger.info(
        "data %s ready in %.1f s: %s",
        source.dataset_name,
        time.perf_counter() - start,
        ", ".join(f"{name} {n}" for name, n in counts.items()),
    )
    return counts


def prerequisite_needs(space: SearchSpace) -> dict[str, tuple[str, str]]:
    """role -> (mode, size) of the models `space`'s trials build on."""
    from trainables.training.names import PREREQUISITES

    # kd's teacher is a teacher GAT whatever the space's size; the others match the trials'.
    kinds = {"teacher": ("normal", "teacher"), "vgae": ("autoencoder", space.size)}
    kinds["gat"] = ("normal", space.size)
    return {role: kinds[role] for role in PREREQUISITES.get(space.mode, ())}


def prerequisite_config(
    mode: str, size: str, space: SearchSpace, source: GraphSource, *, seed: int, out_dir: Path
) -> TrainConfig:
    """How a prerequisite trains: the space's epochs, the datamodule's batch size, no tuner."""
    from trainables.training.config import TrainConfig

    return TrainConfig(
        mode=mode,  # type: ignore[arg-type]
        size=size,  # type: ignore[arg-type]
        source=source,
        epochs=space.epochs,
        seed=seed,
        out_dir=out_dir,
    )


def prepare_prerequisites(
    space: SearchSpace, source: GraphSource, study_dir: Path, *, seed: int
) -> Prerequisites:
    """Train (or find, on resume) the models `space`'s mode builds on, once per study.

    They train with the space's epochs and model size, a fixed batch size and no budget: they are
    not what the study searches.

    Raises:
        UserError: A prerequisite ran out of memory (nothing to build the trials on).
    """
    paths = {
        role: _trained(role, mode, size, space, source, study_dir, seed)
        for role, (mode, size) in prerequisite_needs(space).items()
    }
    return Prerequisites(**paths)


def _trained(
    role: str,
    mode: str,
    size: str,
    space: SearchSpace,
    source: GraphSource,
    study_dir: Path,
    seed: int,
) -> Path:
    from trainables.training.run import run_training

    final = study_dir / "prerequisites" / f"{role}-{mode}-{size}"
    if (final / "model.pt").is_file():
        logger.info("prerequisite %s: found %s", role, final)
        return final
    # Trained into a scratch directory and renamed when complete: an interrupted study never
    # leaves a half-written checkpoint that a resumed one would take for finished.
    scratch = final.with_name(final.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    logger.info("prerequisite %s: training a %s %s model once for the study", role, size, mode)
    config = prerequisite_config(
        mode, size, space, source, seed=seed, out_dir=study_dir / "prerequisites"
    )
    result = run_training(config, run_dir=scratch)
    if result.oom:
        raise UserError(
            f"the study's {role} ({size} {mode}) ran out of memory ({result.oom_stage}); give"
            " the machine more memory or pick a smaller model size"
        )
    scratch.rename(final)
    return final
