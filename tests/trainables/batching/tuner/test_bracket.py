from __future__ import annotations

from pytorch_lightning.tuner import batch_size_scaling

from trainables.batching.heaviest import ProbeDataModule, largest_first
from trainables.batching.oom import is_out_of_memory
from trainables.batching.tuner.bracket import Bracket, Settled, search_hooks
from trainables.data import CANGraphDataModule


def test_search_hooks_see_every_oom_and_are_scoped(data: CANGraphDataModule) -> None:
    assert data.val_set is not None
    probe = ProbeDataModule(largest_first(data.val_set.graphs), batch_size=2, for_eval=True)
    original, original_run = batch_size_scaling.is_oom_error, batch_size_scaling._try_loop_run
    bad_alloc = RuntimeError("std::bad_alloc")
    assert not original(bad_alloc)  # what Lightning alone would call a hard error
    with search_hooks(probe, Bracket(0.0)):
        assert batch_size_scaling.is_oom_error(bad_alloc)
        assert batch_size_scaling.is_oom_error(Settled("settled"))
        assert batch_size_scaling._try_loop_run is not original_run
    assert batch_size_scaling.is_oom_error is original
    assert batch_size_scaling._try_loop_run is original_run
    assert is_out_of_memory(bad_alloc)


def test_bracket_settles_sizes_known_to_fail_and_within_the_tolerance() -> None:
    bracket = Bracket(0.05)
    assert not bracket.settled(10**6)  # nothing known yet: every size runs
    bracket.record(300, fitted=False)
    assert bracket.settled(300) and bracket.settled(400)  # at or past a failure
    assert not bracket.settled(150)  # nothing has run: the search must go on
    bracket.record(256, fitted=True)
    assert not bracket.settled(280)  # a gap of 44 > 5% of 256
    bracket.record(270, fitted=True)
    bracket.record(280, fitted=False)
    assert bracket.settled(275)  # a gap of 10 <= 5% of 270: stop
    assert not bracket.settled(270) and not bracket.settled(200)  # what ran stays runnable
