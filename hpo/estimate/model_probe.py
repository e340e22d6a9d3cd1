"""The model probe: the space's model's memory and step time against batch size, as lines.

`probe_model` runs the model for a few steps at 2-3 batch sizes, each in its own memory budget:
the peaks give memory per graph, the step times seconds per step and per graph. `replay_tuner`
replays the tuner on those lines: `find_frontier` runs on a stand-in module that steps in no
time and runs out of memory where the memory line says it would, so the sizes it tries are the
real tuner's; their steps are predicted from the step lines.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.estimate.arithmetic import LinearFit, fit_line
from hpo.estimate.steps import Device, StepTiming, median, time_steps

if TYPE_CHECKING:
    from trainables.batching.heaviest import WorstBatches
    from trainables.data.dataset import CANGraphDataset

__all__ = ["ModelProbe", "probe_model", "replay_tuner"]

_NUM_TIMED_STEPS = 3


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


def replay_tuner(
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
