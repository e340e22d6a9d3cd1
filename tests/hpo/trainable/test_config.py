from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from hpo.study import StudyConfig
from hpo.study.tuner import warm_start_key
from hpo.trainable import TrialContext, train_config
from search_spaces import get_space
from trainables.data.source import GraphSource
from trainables.training.factors import factor_key


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


@pytest.mark.parametrize(
    ("gpus_per_trial", "asked"), [(0.5, None), (0.5, 2 << 30), (1.0, None), (0.0, None)]
)
def test_trials_record_factors_under_the_key_the_warm_start_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpus_per_trial: float, asked: int | None
) -> None:
    # No GPU here: its memory is what torch would report on an 80 GiB one.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus_per_trial > 0)
    total = 80 << 30
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda _: types.SimpleNamespace(total_memory=total)
    )
    space = get_space("normal")
    source = GraphSource(num_messages=1000, cache_dir=tmp_path)
    study = StudyConfig(
        space=space,
        study_dir=tmp_path / "s",
        source=source,
        memory_budget=asked,
        gpus_per_trial=gpus_per_trial,
    )
    context = TrialContext(
        space=space,
        source=source,
        seed=0,
        study_dir=tmp_path / "s",
        memory_budget=asked,
        gpus_per_trial=gpus_per_trial,
    )
    config = train_config(space.warm_start_params(0.5), context)
    if asked is None and 0 < gpus_per_trial < 1:  # the trial's share of the GPU, as its budget
        assert config.batching.memory_budget == int(total * gpus_per_trial)
    device = torch.device("cuda" if gpus_per_trial else "cpu")
    assert factor_key(config, device) == warm_start_key(study)
