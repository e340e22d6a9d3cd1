"""The dataset probe: what one dataset and the space's model cost, measured in this process.

`probe_dataset` builds the data (or loads it from the graph cache) as the driver does, times the
models the mode builds on as the driver trains them, probes the space's model (`probe_model`:
memory and step time against batch size) and replays the tuner on its lines at a trial's budget
(`replay_tuner`; both in `hpo.estimate.model_probe`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.estimate.arithmetic import LinearFit, steps_seconds
from hpo.estimate.model_probe import ModelProbe, probe_model, replay_tuner
from hpo.estimate.prerequisites import prerequisite_seconds, stand_ins
from hpo.estimate.steps import Device, StepBenchmark, default_budget, quiet_data_logs
from hpo.estimate.steps import trial_datamodule as _datamodule

if TYPE_CHECKING:
    from search_spaces.base import SearchSpace
    from trainables.data.source import GraphSource

__all__ = ["DatasetProbe", "probe_dataset"]

_BENCHMARK_SECONDS = 1.0


@dataclass(frozen=True)
class DatasetProbe:
    """What the probe measured on one dataset, at the speed of one trial alone (seconds, bytes).

    Args:
        dataset: The dataset's name.
        device: Where the probe ran.
        num_threads: CPU threads it trained with (a trial's share).
        budget_bytes: The trial budget the tuner was replayed at.
        num_train_graphs_per_epoch: Training graphs of each epoch (curriculum's grow).
        num_val_graphs: Validation graphs (every epoch).
        num_test_graphs: Graphs of each test split (tested once per trial).
        train_probe_graphs: The tuner's training probe set: its answer is at most this.
        eval_probe_graphs: The tuner's evaluation probe set.
        model: The space's model (fusion: its VGAE scoring in each fit's overhead).
        tuner_seconds: The tuner at `budget_bytes`, replayed.
        data_seconds: The driver's data preparation once the graphs are in the cache.
        run_setup_seconds: A trial's work before the tuner (data, model, budget; curriculum's
            VGAE scoring).
        prerequisite_seconds: Training the models the mode builds on, once, in the driver.
        dataset_bytes: The graphs' arrays in memory (every worker loads them).
        model_bytes: The model's state dict (each trial saves one).
        driver_memory_bytes: This process's resident memory after the probe.
        benchmark: The trial's steps, for the dry study to time side by side.
        probe_seconds: The probe's own wall time.
    """

    dataset: str
    device: Device
    num_threads: int
    budget_bytes: int
    num_train_graphs_per_epoch: tuple[int, ...]
    num_val_graphs: int
    num_test_graphs: tuple[int, ...]
    train_probe_graphs: int
    eval_probe_graphs: int
    model: ModelProbe
    tuner_seconds: float
    data_seconds: float
    run_setup_seconds: float
    prerequisite_seconds: float
    dataset_bytes: int
    model_bytes: int
    driver_memory_bytes: int
    benchmark: StepBenchmark
    probe_seconds: float


def probe_dataset(
    space: SearchSpace,
    source: GraphSource,
    *,
    device: Device,
    budget_bytes: int,
    workdir: Path,
    seed: int = 0,
    num_threads: int | None = None,
    max_step_seconds: float = 1.0,
) -> DatasetProbe:
    """Measure the space's model on one dataset (see the module docstring).

    Args:
        space: The search space (mode, model size, epochs).
        source: The dataset.
        device: `cpu` or `cuda`.
        budget_bytes: A trial's memory budget (the tuner is replayed at it).
        workdir: Where stand-in checkpoints go; it must outlive the dry study.
        seed: The study's seed.
        num_threads: CPU threads to train with (default: torch's setting).
        max_step_seconds: No batch size whose step is predicted slower is probed (default 1).
    """
    from hpo.prepare import prerequisite_needs
    from trainables.batching.system_memory import process_memory_bytes
    from trainables.modes.curriculum import SCORING_BATCH_SIZE, score_graphs
    from trainables.training.config import TrainConfig
    from trainables.training.frontier import eval_probe_set, train_probe_set
    from trainables.training.prerequisites import load_vgae, module_factory

    start = time.perf_counter()
    data_seconds = _data_seconds(source, seed=seed)
    checkpoints = stand_ins(space, source, workdir, seed=seed)
    before_trials, vgae_step = 0.0, LinearFit(0.0, 0.0)
    for mode, size in prerequisite_needs(space).values():
        seconds, step = prerequisite_seconds(
            mode, size, space, source, workdir, seed=seed, device=device
        )
        before_trials += seconds
        vgae_step = step if mode == "autoencoder" else vgae_step
    config = TrainConfig(
        mode=space.mode,
        size=space.size,
        source=source,
        epochs=space.epochs,
        seed=seed,
        out_dir=workdir / "runs",
        teacher=checkpoints.get("teacher"),
        vgae=checkpoints.get("vgae"),
        gat=checkpoints.get("gat"),
    )
    with _torch_threads(num_threads) as threads:
        tick = time.perf_counter()
        datamodule = _datamodule(config)
        make_module = module_factory(config, len(datamodule.vocab), workdir, {})
        state = make_module().model.state_dict()
        with default_budget(device):
            pass  # entering one collects garbage and sets limits, as a trial's run does
        train, val = datamodule.train_set, datamodule.val_set
        if space.mode == "curriculum":  # as a trial: its VGAE (a stand-in) scores the graphs
            vgae = load_vgae(config, len(datamodule.vocab), workdir, {})
            datamodule.set_difficulty(score_graphs(vgae, train))
        # curriculum and fusion: the VGAE scores the training graphs (before the tuner; fusion:
        # at every fit, a trial's and the tuner's two).
        scoring = steps_seconds(len(train), SCORING_BATCH_SIZE, vgae_step)
        setup = time.perf_counter() - tick + (scoring if space.mode == "curriculum" else 0.0)
        # The tuner's own probe sets: the heaviest windows of the epochs' orders, and every
        # evaluation graph largest first.
        train_probe = train_probe_set(config, datamodule)
        evaluation = eval_probe_set(datamodule)
        model = probe_model(
            make_module, train, evaluation, device=device, seed=seed, max_step=max_step_seconds
        )
        means = (float(train.graph_sizes.mean()), float(evaluation.graph_sizes.mean()))
        tuner = replay_tuner(
            model, train_probe, evaluation, means, budget_bytes, config.batching.tuner
        )
    if space.mode == "fusion":
        model = _with_fit_overhead(model, scoring)
        tuner += 2 * scoring
    # Side by side, trials slow each other down more at large batches (memory bandwidth) than
    # at small ones: the dry study times the largest size probed, as trials mostly run large.
    largest = model.batch_sizes[-1]
    num_steps = math.ceil(_BENCHMARK_SECONDS / max(model.train_step.at(largest), 1e-4))
    return DatasetProbe(
        dataset=source.dataset_name,
        device=device,
        num_threads=threads,
        budget_bytes=budget_bytes,
        num_train_graphs_per_epoch=_train_graphs_per_epoch(datamodule, space.epochs),
        num_val_graphs=len(val),
        num_test_graphs=tuple(len(d) for d in datamodule.test_sets.values()),
        train_probe_graphs=len(train_probe),
        eval_probe_graphs=len(evaluation),
        model=model,
        tuner_seconds=tuner,
        data_seconds=data_seconds,
        run_setup_seconds=setup,
        prerequisite_seconds=before_trials,
        dataset_bytes=sum(_array_bytes(s.graphs) for s in datamodule.loaded.values()),
        model_bytes=sum(t.numel() * t.element_size() for t in state.values()),
        driver_memory_bytes=process_memory_bytes("VmRSS"),
        benchmark=StepBenchmark(config, largest, min(50, max(3, num_steps)), device, seed),
        probe_seconds=time.perf_counter() - start,
    )


def _data_seconds(source: GraphSource, *, seed: int) -> float:
    """The driver's `prepare_data`: the first run builds the graphs (or loads them), the second
    is what a study after this estimate pays (the build itself without the cache)."""
    from trainables.data.datamodule import CANGraphDataModule

    seconds = []
    for _ in range(2):
        tick = time.perf_counter()
        with quiet_data_logs():
            CANGraphDataModule(source, seed=seed).setup("fit")
        seconds.append(time.perf_counter() - tick)
    return seconds[-1] if source.use_cache else seconds[0]


def _train_graphs_per_epoch(datamodule: Any, epochs: int) -> tuple[int, ...]:
    """Training graphs of each epoch (curriculum's from its own sampling)."""
    return tuple(len(order) for order in datamodule.train_orders(epochs))


def _with_fit_overhead(model: ModelProbe, seconds: float) -> ModelProbe:
    import dataclasses

    return dataclasses.replace(model, fit_overhead_seconds=model.fit_overhead_seconds + seconds)


def _array_bytes(graphs: Any) -> int:
    return int(sum(v.nbytes for v in vars(graphs).values() if hasattr(v, "nbytes")))


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[int]:
    import torch

    previous = torch.get_num_threads()
    try:
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
