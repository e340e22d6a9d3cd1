"""Find the largest batch sizes that fit, with Lightning's tuner, on the worst-case batches.

Lightning's `Tuner.scale_batch_size` grows a batch size until it runs out of memory. Three things
decide whether its answer holds for a whole run, and all three are fixed here:

- What it probes. It steps through whatever the datamodule serves; shuffled, typical batches
  give a maximum that an epoch meeting the largest graphs first exceeds. Here every probed step
  is the heaviest batch of its size the run will meet (`trainables.batching.heaviest`): the
  heaviest consecutive graphs of the orders its epochs train in, or the largest graphs.
- What it restores. It checkpoints and restores the model it probes; here the probe runs on a
  throwaway module and trainer, so training starts from a model the tuner never touched.
- What a step holds. Each probed size runs the first step of a fresh optimiser, whose state
  (Adam: twice the trained parameters) is allocated only after the backward pass, while a run's
  later steps, its validation and its test hold that state and the last gradients throughout.
  Here every probed step has them beside it (`training_state.TrainingState`).

Its `margin` (a hidden 5% reduction in binsearch mode) is set to 0: the trial's safety factor is
the only factor applied. The eval maximum is probed separately (no gradients: it is larger).

Its binsearch bisects down to one graph; near the maximum every probed step costs about a
training step of the run. Here it stops once the largest size that ran and the smallest that ran
out of memory are within `TunerSettings.tolerance` of each other: sizes between them are answered
as too large without running, so the answer is always a size that ran, at most `tolerance` below
what the full bisection would return.

Where the budget can be measured (`trainables.batching.step_memory`), the search is aimed: a
line of each step's peak memory against its batch's nodes + edges stops Lightning's doubling at
a quarter of the maximum it predicts, then picks the next sizes, next to the maximum, in two or
three steps instead of a doubling to the first failure and about five bisection steps; a size
the line through the answer's own peak has too heavy is not run to be seen failing. One size is
answered without its step: the whole set, when the line (checked for linearity on the doubling's
last steps, measured up to at least a sixteenth of the set) has it at most half the room. That
step would cost about an epoch of training on the whole set, and a budget far larger than the
data is a local study's default.

The package's modules, in the order a search uses them: `settings` (`TunerSettings`), `probe`
(`probe_max_batch_size`, `find_frontier`: the entry points), `search` (one search's steps, aimed
or Lightning's), `bracket` (what a search has learnt, and the hooks that let it see every
out-of-memory error inside Lightning's loop), `training_state` (what each probed step holds
beside it).
"""

from trainables.batching.tuner.probe import (
    PROBE_VERSION,
    find_frontier,
    probe_max_batch_size,
    warm_up,
)
from trainables.batching.tuner.search import quiet_trainer
from trainables.batching.tuner.settings import TunerMode, TunerSettings
from trainables.batching.tuner.training_state import TrainingState

__all__ = [
    "PROBE_VERSION",
    "TrainingState",
    "TunerMode",
    "TunerSettings",
    "find_frontier",
    "probe_max_batch_size",
    "quiet_trainer",
    "warm_up",
]
