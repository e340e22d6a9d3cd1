"""The model probe: what one dataset and the space's model cost, measured in this process.

`probe_dataset` builds the data (or loads it from the graph cache) as the driver does, times the
models the mode builds on as the driver trains them, and runs the space's model for a few steps
at 2-3 batch sizes, each in its own memory budget: the peaks give memory per graph, the step
times seconds per step and per graph. The tuner is replayed: `find_frontier` runs on a stand-in
module that steps in no time and runs out of memory where the memory line says it would, so the
sizes it tries are the real tuner's; their steps are predicted from the step lines.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.estimate.arithmetic import LinearFit, fit_line, steps_seconds
from hpo.estimate.prerequisites import prerequisite_seconds, stand_ins
from hpo.estimate.steps import (
    Device,
    StepBenchmark,
    StepTiming,
    default_budget,
    median,
    time_steps,
)
from hpo.estimate.steps import trial_datamodule as _datamodule

if TYPE_CHECKING:
    from search_spaces.base import SearchSpace
    from trainables.batching.heaviest import WorstBatches
    from trainables.data.dataset import CANGraphDataset
    from trainables.data.source import GraphSource

__all__ = ["DatasetProbe", "ModelProbe", "probe_dataset", "probe_model"]

_NUM_TIMED_STEPS = 3
_BENCHMARK_SECONDS = 1.0


@dataclass(frozen=True)
class ModelProbe:
    """Memory (bytes; batches of the largest graphs) and step time (seconds; random batches)
    against batch size, and a fit's and a validate's seconds outside their steps."""

    batch_sizes: tuple[int, ...]
    train_memory: LinearFit
    eval_memory: LinearFit
    train_step: LinearFit
    eval_step: LinearFit
    fit_overhead_seconds: float
    eval_overhead_seconds: float


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
        tuner = _replay_tuner(
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


def probe_model(
    make_module: Any,
    train: CANGraphDataset,
    evaluation: CANGraphDataset,
    *,
    device: Device,
    seed: int,
    max_step: float,
    sizes: Sequence[int] = (),
    in_budget: bool = True,
) -> ModelProbe:
    """`time_steps` at `sizes` (default 3 sizes, 4x apart on CPU, 8x on CUDA, none predicted
    slower than `max_step` seconds a step), fitted to lines."""
    first, factor = (8, 4) if device == "cpu" else (32, 8)
    cap = 2 * len(train) + 2
    timings: list[tuple[int, StepTiming]] = []
    for size in sizes or sorted({min(first * factor**i, cap) for i in range(3)}):
        if timings and median(timings[-1][1].train_steps) * size / timings[-1][0] > max_step:
            break
        timing = time_steps(
            make_module, train, evaluation, batch_size=size, num_steps=_NUM_TIMED_STEPS,
            device=device, seed=seed, in_budget=in_budget,
        )  # fmt: skip
        timings.append((size, timing))
    xs = [s for s, _ in timings]

    def line(name: str, *, memory: bool = False) -> LinearFit:
        if memory:
            return fit_line(xs, [getattr(t, name) for _, t in timings], positive_slope=True)
        points = [(s, d) for s, t in timings for d in getattr(t, name)]
        return fit_line([s for s, _ in points], [d for _, d in points])

    return ModelProbe(
        batch_sizes=tuple(xs),
        train_memory=line("train_peak_bytes", memory=True),
        eval_memory=line("eval_peak_bytes", memory=True),
        train_step=line("train_steps"),
        eval_step=line("eval_steps"),
        fit_overhead_seconds=median(t.fit_overhead_seconds for _, t in timings),
        eval_overhead_seconds=median(t.eval_overhead_seconds for _, t in timings),
    )


def _replay_tuner(
    model: ModelProbe,
    train_probe: WorstBatches,
    eval_probe: CANGraphDataset,
    mean_sizes: tuple[float, float],
    budget_bytes: int,
    settings: Any,
) -> float:
    """The tuner's seconds at `budget_bytes`: `find_frontier` on a module that steps in no time
    and runs out of memory past the memory lines, plus each step it ran as the step lines
    predict it, scaled by how much heavier its graphs are than those the lines were timed on
    (`mean_sizes`: mean nodes + edges of the train and eval graphs)."""
    import pytorch_lightning as pl
    import torch

    from trainables.batching.oom import is_out_of_memory
    from trainables.batching.step_memory import StepMemory
    from trainables.batching.tuner import find_frontier

    predicted: list[float] = []
    peak = [0]  # the most a replayed step needed since the meter's last begin

    def begin() -> int:
        peak[0] = 0
        return 0

    # The tuner aims its search by each step's peak: the replay's are the memory lines'.
    meter = StepMemory(room_bytes=lambda: budget_bytes, begin=begin, peak=lambda: peak[0])

    class Replay(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def _step(self, batch: Any, is_eval: bool) -> torch.Tensor:
            graphs = batch.num_graphs
            heaviness = (batch.num_nodes + batch.num_edges) / graphs / mean_sizes[is_eval]
            step = model.eval_step if is_eval else model.train_step
            predicted.append(step.at(graphs * heaviness))
            need = (model.eval_memory if is_eval else model.train_memory).at(graphs)
            peak[0] = max(peak[0], int(need))
            if need > budget_bytes:
                raise RuntimeError("CUDA out of memory (replayed from the memory line)")
            return self.weight.sum() * 0.0

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return self._step(batch, False)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self._step(batch, True)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.0)

    tick = time.perf_counter()
    try:
        find_frontier(Replay, train_probe, eval_probe, settings=settings, meter=meter)
    except Exception as error:  # nothing fits: the real tuner ends the trial there too
        if not is_out_of_memory(error):
            raise
    return time.perf_counter() - tick + sum(predicted)


def _data_seconds(source: GraphSource, *, seed: int) -> float:
    """The driver's `prepare_data`: the first run builds the graphs (or loads them), the second
    is what a study after this estimate pays (the build itself without the cache)."""
    from trainables.data.datamodule import CANGraphDataModule

    seconds = []
    for _ in range(2):
        tick = time.perf_counter()
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
