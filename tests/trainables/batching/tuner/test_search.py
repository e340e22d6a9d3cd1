from __future__ import annotations

import numpy as np
import pytest

from tests.trainables.batching.tuner._modules import Ceiling, LinearMemory
from trainables.batching.heaviest import largest_first
from trainables.batching.step_memory import StepMemory
from trainables.batching.tuner import TunerSettings, probe_max_batch_size
from trainables.data import CANGraphDataModule
from trainables.models import GATClassifier, GATConfig


def _search(data: CANGraphDataModule, tolerance: float) -> tuple[int, list[int]]:
    """The size a binsearch with `tolerance` finds under `Ceiling`, and the sizes it ran."""
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    assert len(probe) > Ceiling.ceiling  # the whole set does not fit: the search runs
    ceiling = Ceiling(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    settings = TunerSettings(tolerance=tolerance)
    found = probe_max_batch_size(ceiling, probe, for_eval=False, settings=settings)
    # Training steps that got as far as the model (a training probe validates one graph).
    return found, [size for size in ceiling.sizes if size > 1]


@pytest.mark.parametrize("tolerance", [0.05, 0.2])
def test_binsearch_stops_within_its_tolerance_on_a_size_that_ran(
    data: CANGraphDataModule, tolerance: float
) -> None:
    exact, exact_ran = _search(data, 0.0)
    assert exact == Ceiling.ceiling  # Lightning's full bisection, to one graph
    found, ran = _search(data, tolerance)
    assert (1 - tolerance) * exact <= found <= exact
    assert found in ran  # the answer is a size that ran, never one claimed without a step
    # Once the answer and the smallest failure are within the tolerance, nothing more runs.
    smallest_failure = min(size for size in ran if size > found)
    assert smallest_failure - found <= tolerance * found
    assert len(set(ran)) < len(set(exact_ran))


def test_a_search_starting_past_the_set_bisects_down_without_rerunning_it(
    data: CANGraphDataModule,
) -> None:
    # Too heavy as a whole, the set is not run again as the search's first size: the search
    # knows it failed and bisects down from it.
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    assert len(probe) > Ceiling.ceiling
    ceiling = Ceiling(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    settings = TunerSettings(init_val=4 * len(probe), tolerance=0.05)
    found = probe_max_batch_size(ceiling, probe, for_eval=False, settings=settings)
    assert 0.95 * Ceiling.ceiling <= found <= Ceiling.ceiling
    ran = [size for size in ceiling.sizes if size > 1]
    assert ran.count(len(probe)) == 1 and max(ran) == len(probe)
    assert found in ran


def _linear_search(
    data: CANGraphDataModule,
    *,
    aim: bool,
    share: float = 0.4,
    growth: float = 1.0,
    room_per_set: float | None = None,
) -> tuple[int, list[int], int]:
    """The size a search finds under `LinearMemory` with room for the `share` lightest graphs'
    worth of the heaviest (or `room_per_set` times what the whole set needs), the sizes it ran,
    and the true maximum."""
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    weights = np.cumsum(probe.graph_sizes)
    model = GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab)))
    linear = LinearMemory(model, room=0, growth=growth)
    if room_per_set is None:
        linear.room = linear.need(int(weights[int(share * len(probe))]))
    else:
        linear.room = int(room_per_set * linear.need(int(weights[-1])))
    true_max = sum(linear.need(int(w)) <= linear.room for w in weights)
    found = probe_max_batch_size(
        linear,
        probe,
        for_eval=False,
        settings=TunerSettings(aim=aim),
        meter=linear.meter() if aim else None,
    )
    return found, [size for size in linear.sizes if size > 1], true_max


def test_an_aimed_search_settles_next_to_the_maximum_in_fewer_steps(
    data: CANGraphDataModule,
) -> None:
    tolerance = TunerSettings().tolerance
    plain, plain_ran, true_max = _linear_search(data, aim=False)
    found, ran, _ = _linear_search(data, aim=True)
    assert (1 - tolerance) * true_max <= found <= true_max
    assert found in ran  # a size that ran, never one claimed without a step
    # Measured, the search needs no failure to settle: neither the doubling's (it stops at a
    # quarter of the predicted maximum) nor the one within the tolerance above the answer.
    assert max(ran) == found
    plain_failures = [size for size in plain_ran if size > plain]
    assert plain_failures and min(plain_failures) - plain <= tolerance * plain
    near = [size for size in ran if size > true_max // 2]
    plain_near = [size for size in plain_ran if size > true_max // 2]
    assert len(near) < len(plain_near) and len(ran) < len(plain_ran), (ran, plain_ran)
    assert (1 - tolerance) * true_max <= plain <= true_max


def test_an_aimed_search_bisects_when_its_line_runs_low(data: CANGraphDataModule) -> None:
    # Peaks that grow much faster than linear: a line through smaller sizes has sizes fitting
    # that fail. The search still settles within the tolerance, on a size that ran.
    tolerance = TunerSettings().tolerance
    found, ran, true_max = _linear_search(data, aim=True, growth=1.5)
    assert (1 - tolerance) * true_max <= found <= true_max
    assert found in ran
    assert any(size > true_max for size in ran)  # the line did run low
    _, plain_ran, _ = _linear_search(data, aim=False, growth=1.5)
    assert len(ran) < len(plain_ran), (ran, plain_ran)


def test_an_aimed_search_takes_a_set_that_fits_by_a_wide_margin_without_its_step(
    data: CANGraphDataModule,
) -> None:
    # Room for three whole sets: the line, measured up to a sixteenth of the set, has it at a
    # third of the room. The set is the answer, and neither it nor anything near it runs (a
    # step of the whole set costs about an epoch of training on it).
    assert data.train_set is not None
    num_graphs = len(largest_first(data.train_set.graphs))  # the probe set
    found, ran, true_max = _linear_search(data, aim=True, room_per_set=3.0)
    assert found == true_max == num_graphs
    assert num_graphs / 16 <= max(ran) < num_graphs / 8, ran


@pytest.mark.parametrize(
    ("room_per_set", "growth"),
    [
        (1.5, 1.0),  # it fits, with less than twice its line's peak of room: its step decides
        (0.9, 1.5),  # it does not fit: peaks grow faster than the line (by weight ** 1.5)
        (3.0, 1.5),  # it fits, but the line failed its own check: its step decides
    ],
)
def test_an_aimed_search_runs_the_set_unless_its_line_is_sure(
    data: CANGraphDataModule, room_per_set: float, growth: float
) -> None:
    tolerance = TunerSettings().tolerance
    found, ran, true_max = _linear_search(data, aim=True, room_per_set=room_per_set, growth=growth)
    assert (1 - tolerance) * true_max <= found <= true_max
    assert found in ran  # a size that ran, never one claimed without a step


def test_an_aimed_search_does_not_trust_a_line_a_low_reading_flattened(
    data: CANGraphDataModule,
) -> None:
    # The set does not fit, but the step of 16 graphs reads low (a step reusing memory an
    # earlier one left resident, say): the line through 8 and 16 runs flat and has the set at
    # about a quarter of the room. The line through 4 and 8 predicted 16's peak far higher, so
    # the set is not taken on that line.
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    weights = np.cumsum(probe.graph_sizes)
    model = GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab)))
    linear = LinearMemory(model, room=0)
    linear.room = int(0.9 * linear.need(int(weights[-1])))
    true_max = sum(linear.need(int(w)) <= linear.room for w in weights)
    low = int(0.8 * linear.need(int(weights[15] - weights[7])))  # of 16's growth over 8's
    meter = linear.meter()
    reading_low = StepMemory(
        room_bytes=meter.room_bytes,
        begin=meter.begin,
        peak=lambda: meter.peak() - (low if linear.sizes[-1:] == [16] else 0),
    )
    found = probe_max_batch_size(
        linear, probe, for_eval=False, settings=TunerSettings(), meter=reading_low
    )
    assert {4, 8, 16} <= set(linear.sizes)
    assert found <= true_max < len(probe)
    assert found in linear.sizes


def _eval_search(data: CANGraphDataModule, *, aim: bool) -> tuple[int, list[int], int, int]:
    """An eval search from the train maximum under `LinearMemory`, where evaluation needs a
    third of training's memory: its answer, the sizes it ran, the true eval maximum and the
    train maximum it started at."""
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    weights = np.cumsum(probe.graph_sizes)
    model = GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab)))
    linear = LinearMemory(model, room=0, eval_share=1 / 3)
    linear.room = linear.need(int(weights[len(probe) // 8]))
    train_max = sum(linear.need(int(w)) <= linear.room for w in weights)
    true_max = sum(linear.need(int(w)) / 3 <= linear.room for w in weights)
    assert 2 * train_max < true_max < len(probe)  # past one doubling, short of the whole set
    found = probe_max_batch_size(
        linear,
        probe,
        for_eval=True,
        settings=TunerSettings(aim=aim, init_val=train_max),
        meter=linear.meter() if aim else None,
    )
    return found, linear.sizes, true_max, train_max


def test_an_aimed_eval_search_aims_from_its_first_step(data: CANGraphDataModule) -> None:
    # One evaluation step (no optimiser state) gives a line through zero: the search aims from
    # the train maximum at once instead of doubling, and that line errs low, so nothing it
    # runs fails.
    tolerance = TunerSettings().tolerance
    found, ran, true_max, train_max = _eval_search(data, aim=True)
    assert (1 - tolerance) * true_max <= found <= true_max
    assert ran[0] == train_max and 2 * train_max not in ran, ran
    assert max(ran) == found  # no step past the answer: none ran out of memory
    plain, plain_ran, _, _ = _eval_search(data, aim=False)
    assert (1 - tolerance) * true_max <= plain <= true_max
    assert len(ran) <= 3 < len(plain_ran), (ran, plain_ran)


def test_an_aimed_search_without_a_usable_line_is_lightnings_binsearch(
    data: CANGraphDataModule,
) -> None:
    # A meter that sees nothing (a step adds no measurable memory): no line to aim with, so
    # Lightning's binsearch goes on, to the same answer as unaimed.
    assert data.train_set is not None and data.vocab is not None
    probe = largest_first(data.train_set.graphs)
    blind = StepMemory(room_bytes=lambda: 1 << 30, begin=lambda: 0, peak=lambda: 0)
    ceiling = Ceiling(GATClassifier(GATConfig.preset("student", vocab_size=len(data.vocab))))
    found = probe_max_batch_size(
        ceiling, probe, for_eval=False, settings=TunerSettings(), meter=blind
    )
    assert 0.97 * Ceiling.ceiling <= found <= Ceiling.ceiling
    assert found in ceiling.sizes
