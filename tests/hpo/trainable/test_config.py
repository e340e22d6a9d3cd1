from __future__ import annotations

from pathlib import Path

import pytest

from hpo.trainable import TrialContext, train_config
from search_spaces import get_space
from trainables.data.source import GraphSource


@pytest.mark.parametrize(("gpus_per_trial", "sharing"), [(0.0, 3), (1.0, 1), (2.0, 1)])
def test_trial_config_carries_the_study_default_budget_and_who_shares_the_memory(
    tmp_path: Path, gpus_per_trial: float, sharing: int
) -> None:
    # CPU trials share the machine's memory; a trial with whole GPUs has their memory to itself.
    space = get_space("normal")
    context = TrialContext(
        space=space,
        source=GraphSource(num_messages=1000, cache_dir=tmp_path),
        seed=0,
        study_dir=tmp_path,
        default_budget=3 << 30,
        gpus_per_trial=gpus_per_trial,
        num_concurrent_trials=3,
    )
    params = space.warm_start_params(0.5)
    batching = train_config(params, context).batching
    assert (batching.memory_budget, batching.default_budget) == (None, 3 << 30)
    assert batching.num_concurrent_trials == sharing
    assert batching.memo_path == tmp_path / "batch_size_frontier.json"
