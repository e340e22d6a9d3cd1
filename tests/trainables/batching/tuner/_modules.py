"""Modules the tuner tests probe: they record what they ran, or run out of memory on cue."""

from __future__ import annotations

import torch
from torch_geometric.data import Batch

from trainables.batching.step_memory import StepMemory
from trainables.models import GATClassifier, GATConfig
from trainables.modes import ClassifierModule


def module(vocab_size: int, size: str = "student") -> ClassifierModule:
    return ClassifierModule(GATClassifier(GATConfig.preset(size, vocab_size=vocab_size)))


class Recording(ClassifierModule):
    """Records the size of every batch it trains or validates on."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sizes: list[int] = []

    def on_train_batch_start(self, batch: object, batch_idx: int) -> None:
        self.sizes.append(int(batch.num_graphs))  # type: ignore[attr-defined]

    def on_validation_batch_start(
        self, batch: object, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self.sizes.append(int(batch.num_graphs))  # type: ignore[attr-defined]


class Ceiling(Recording):
    """Runs out of memory on any training batch of more than 100 graphs, as a budget would."""

    ceiling = 100

    def training_loss(self, batch: Batch) -> torch.Tensor:
        if batch.num_graphs > self.ceiling:
            raise torch.OutOfMemoryError(f"{batch.num_graphs} graphs > {self.ceiling}")
        return super().training_loss(batch)


class LinearMemory(Recording):
    """Needs `PER_WEIGHT` bytes per node and edge of a training batch (times the weight to the
    power `growth - 1`: peaks that grow faster than linear) and runs out of memory past `room`
    bytes, as a budget would; `peak` is the most any step needed since reset. With an
    `eval_share`, an evaluation batch needs that share of what it would in training (without
    one, evaluation is free)."""

    PER_WEIGHT = 1000

    def __init__(
        self,
        *args: object,
        room: int,
        growth: float = 1.0,
        eval_share: float | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.room = room
        self.growth = growth
        self.eval_share = eval_share
        self.peak = 0

    def need(self, weight: int) -> int:
        return int(self.PER_WEIGHT * weight**self.growth)

    def _use(self, batch: Batch, share: float = 1.0) -> None:
        need = int(share * self.need(int(batch.num_nodes + batch.num_edges)))
        self.peak = max(self.peak, need)
        if need > self.room:
            raise torch.OutOfMemoryError(f"{need} bytes > {self.room}")

    def training_loss(self, batch: Batch) -> torch.Tensor:
        self._use(batch)
        return super().training_loss(batch)

    def validation_outputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.eval_share is not None:
            self._use(batch, self.eval_share)
        return super().validation_outputs(batch)

    def meter(self) -> StepMemory:
        def begin() -> int:
            self.peak = 0
            return 0

        return StepMemory(room_bytes=lambda: self.room, begin=begin, peak=lambda: self.peak)
