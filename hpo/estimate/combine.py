"""From measurements to a study's estimate: budgets, the trials' batch sizes, times, SLURM."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpo.estimate.arithmetic import (
    DEFAULT_MARGIN,
    TrialWork,
    max_batch_size,
    slurm_gres,
    slurm_mem,
    slurm_time,
    steps_seconds,
    study_makespan,
)

if TYPE_CHECKING:
    from hpo.estimate.machinery import Machinery
    from hpo.estimate.probe import DatasetProbe
    from hpo.estimate.steps import Device
    from search_spaces.base import SearchSpace
    from search_spaces.settings import TrialSettings

__all__ = ["StudyEstimate", "combine", "sampled_trials", "trial_budget_bytes"]

_DRIVER_PARTS = ("tracking", "data", "prerequisites", "setup", "trials", "teardown", "finish")


@dataclass(frozen=True)
class StudyEstimate:
    """A study's estimate on one dataset; `to_json()` is one line of `--json`.

    Sizes are bytes, times seconds. Per-graph, epoch and trial times are means over the study's
    trials (their batch sizes) at the speed of trials side by side (`slowdown`). `study_seconds`
    is `run_study`'s wall time in a process that has imported the project, `parts` what it is
    made of; `slurm` is what to ask for: `time` (HH:MM:SS), `nodes`, and per node `mem` (`<n>G`)
    and `gres` (`gpu:<n>`; `gpu:0` for CPU trials).
    """

    space: str
    dataset: str
    device: Device
    num_samples: int
    max_concurrent: int
    gpus: int
    epochs: int
    slowdown: float
    num_train_graphs: int
    num_eval_graphs: int
    memory_budget_bytes: int
    fixed_memory_bytes: int
    memory_per_graph_bytes: float
    eval_memory_per_graph_bytes: float
    max_train_batch_size: int
    max_eval_batch_size: int
    train_seconds_per_graph: float
    eval_seconds_per_graph: float
    epoch_seconds: float
    tuner_seconds: float
    trial_seconds: float
    study_seconds: float
    host_memory_bytes: int
    parts: dict[str, float]
    slurm: dict[str, Any]
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        values = {**dataclasses.asdict(self), "notes": list(self.notes)}
        return {key: _rounded(value) for key, value in values.items()}


def trial_budget_bytes(
    device: Device,
    *,
    num_concurrent_trials: int,
    gpus_per_trial: float = 0.0,
    memory_budget: int | None = None,
    gpu_memory_bytes: int | None = None,
) -> int:
    """A trial's memory budget, as the study sets it (`hpo.study`, `hpo.trainable`).

    `memory_budget` when given. GPU trials: a share g < 1 of a GPU gets g x its memory; a whole
    GPU its free memory (`gpu_memory_bytes` stands for it, rounded down as `default_budget_bytes`
    rounds). CPU trials: `default_budget_bytes` over the concurrent trials, once for the study.
    """
    import torch

    from trainables.batching import BUDGET_GRANULARITY_BYTES, default_budget_bytes

    if memory_budget is not None:
        return memory_budget
    if gpus_per_trial > 0 and (gpu_memory_bytes is not None or device == "cuda"):
        total = gpu_memory_bytes or torch.cuda.get_device_properties(0).total_memory
        if gpus_per_trial < 1:
            return int(total * gpus_per_trial)
        if gpu_memory_bytes is None:
            return default_budget_bytes(torch.device("cuda"), num_concurrent_trials=1)
        return total // BUDGET_GRANULARITY_BYTES * BUDGET_GRANULARITY_BYTES or total
    return default_budget_bytes(torch.device("cpu"), num_concurrent_trials=num_concurrent_trials)


def sampled_trials(
    space: SearchSpace, *, num_samples: int, seed: int, n_startup_trials: int = 5
) -> list[TrialSettings]:
    """The trials' settings as the study's seeded sampler draws them: exactly its random start-up
    trials, and more random draws for those its model would choose (without a warm start)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
    study = optuna.create_study(sampler=sampler)
    return [space.trial_settings(space.sample(study.ask())) for _ in range(num_samples)]


def combine(
    probe: DatasetProbe,
    machinery: Machinery,
    *,
    space: SearchSpace,
    trials: list[TrialSettings],
    max_concurrent: int,
    gpus: int = 1,
    gpus_per_node: int | None = None,
    gpus_per_trial: float = 0.0,
    startup_seconds: float = 0.0,
    margin: float = DEFAULT_MARGIN,
    cluster: bool = False,
) -> StudyEstimate:
    """The estimate from the measurements, by arithmetic.

    Each trial applies `min(its batch size, floor(tuned max x its factor))`, its eval size and
    schedule as the trainer does; the trials run on `max_concurrent` slots (`study_makespan`).

    Args:
        probe: The model probe on the dataset.
        machinery: The dry study.
        space: The search space (epochs).
        trials: Each trial's settings (`sampled_trials`).
        max_concurrent: Trials at once.
        gpus: GPUs of the job.
        gpus_per_node: GPUs per node (default: all on one node).
        gpus_per_trial: A trial's GPU share (0: CPU trials, whose tensors are host memory).
        startup_seconds: A fresh driver process's start-up (SLURM time only).
        margin: SLURM time over the estimate.
        cluster: The study joins a Ray cluster started before it (`hpo.run --address`, the
            SLURM job): a fresh worker per trial, Ray's start-up in the SLURM time only.
    """
    from trainables.batching.safety_factor import apply_safety_factor, resolve_eval_batch_size

    model, budget = probe.model, probe.budget_bytes
    train_max = max_batch_size(budget, model.train_memory, max_graphs=probe.train_probe_graphs)
    eval_max = max_batch_size(budget, model.eval_memory, max_graphs=probe.eval_probe_graphs)
    fits = train_max >= 1 and eval_max >= 1
    per_epoch = probe.num_train_graphs_per_epoch
    works, epochs, train_rates, eval_rates = [], [], [], []
    for settings in trials if fits else []:
        train = min(settings.batch_size, apply_safety_factor(train_max, settings.safety_factor))
        evaluation = resolve_eval_batch_size(
            applied_train=train,
            eval_multiplier=float(settings.eval_multiplier),
            eval_max=eval_max,
            explicit=None,
        )
        sizes = settings.schedule.sizes_for_epochs(train, space.epochs, train_max)
        steps = [
            steps_seconds(n, b, model.train_step) for n, b in zip(per_epoch, sizes, strict=True)
        ]
        val = steps_seconds(probe.num_val_graphs, evaluation, model.eval_step)
        test = sum(steps_seconds(n, evaluation, model.eval_step) for n in probe.num_test_graphs)
        test += model.eval_overhead_seconds if probe.num_test_graphs else 0.0
        epoch_total = sum(steps) + space.epochs * (val + model.eval_overhead_seconds)
        works.append(
            TrialWork(probe.run_setup_seconds, model.fit_overhead_seconds + epoch_total + test)
        )
        epochs.append(epoch_total / space.epochs)
        train_rates.append(sum(steps) / max(sum(per_epoch), 1))
        eval_rates.append(val / max(probe.num_val_graphs, 1))
    notes = []
    if not fits:  # every trial ends out of memory in the tuner
        works = [TrialWork(probe.run_setup_seconds, 0.0)] * len(trials)
        notes.append(f"not even one graph fits a trial's budget of {_size(budget)}")
    slowdown = machinery.slowdown if max_concurrent > 1 else 1.0
    slots = list(machinery.slot_start_seconds)
    slots = (slots + [slots[-1]] * max_concurrent)[:max_concurrent]
    parts = {
        "ray_start": machinery.ray_start_seconds,
        "tracking": machinery.tracking_seconds,
        "data": probe.data_seconds,
        "prerequisites": probe.prerequisite_seconds,
        "setup": machinery.setup_seconds,
        "worker_start": slots[-1],
        "cold": machinery.cold_seconds,
        "tuner": probe.tuner_seconds,
        "trials": study_makespan(
            works,
            slot_start_seconds=slots,
            tuner_seconds=probe.tuner_seconds,
            slowdown=slowdown,
            cold_seconds=machinery.cold_seconds,
            turnover_seconds=machinery.turnover_seconds,
            fresh_worker_per_trial=cluster,
        ),
        "turnover": machinery.turnover_seconds,
        "teardown": machinery.teardown_seconds,
        "finish": machinery.finish_seconds,
        "startup": startup_seconds,
    }
    study = sum(parts[k] for k in _DRIVER_PARTS) + (0.0 if cluster else parts["ray_start"])
    per_node = min(gpus_per_node or gpus, gpus)
    nodes = math.ceil(gpus / per_node)
    worker = machinery.worker_memory_bytes + probe.dataset_bytes
    if gpus_per_trial == 0:  # a CPU trial's tensors are host memory, up to the tuned maximum's
        worker += int(model.train_memory.at(max(train_max, 1)))
    host = probe.driver_memory_bytes + machinery.ray_memory_bytes
    host += math.ceil(max_concurrent / nodes) * worker
    if gpus_per_trial > 0 and probe.device == "cpu":
        notes.append(
            "no GPU here: times and memory per graph are the CPU's (an upper bound of a GPU's"
            " times); --gpu-memory sets the GPU memory the batch sizes assume"
        )
    if len(machinery.slot_start_seconds) < max_concurrent:
        notes.append(
            f"worker start-up measured for {len(machinery.slot_start_seconds)} concurrent"
            f" trials here, assumed alike for {max_concurrent}"
        )
    num_trials = max(len(epochs), 1)
    return StudyEstimate(
        space=space.name,
        dataset=probe.dataset,
        device=probe.device,
        num_samples=len(trials),
        max_concurrent=max_concurrent,
        gpus=gpus,
        epochs=space.epochs,
        slowdown=slowdown,
        num_train_graphs=round(sum(per_epoch) / len(per_epoch)),
        num_eval_graphs=probe.num_val_graphs,
        memory_budget_bytes=budget,
        fixed_memory_bytes=round(model.train_memory.intercept),
        memory_per_graph_bytes=model.train_memory.slope,
        eval_memory_per_graph_bytes=model.eval_memory.slope,
        max_train_batch_size=train_max,
        max_eval_batch_size=eval_max,
        train_seconds_per_graph=slowdown * sum(train_rates) / num_trials,
        eval_seconds_per_graph=slowdown * sum(eval_rates) / num_trials,
        epoch_seconds=slowdown * sum(epochs) / num_trials,
        tuner_seconds=probe.tuner_seconds,
        trial_seconds=slowdown * sum(w.before_tuner + w.after_tuner for w in works) / len(works),
        study_seconds=study,
        host_memory_bytes=host,
        parts=parts,
        slurm={
            "time": slurm_time(
                startup_seconds + study + (parts["ray_start"] if cluster else 0.0), margin=margin
            ),
            "nodes": nodes,
            "mem": slurm_mem(host),
            "gres": slurm_gres(per_node if gpus_per_trial > 0 else 0),  # CPU trials: none
        },
        notes=tuple(notes),
    )


def _size(num_bytes: float) -> str:
    from trainables.batching.sizes import format_size

    return format_size(max(0, int(num_bytes)))


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
