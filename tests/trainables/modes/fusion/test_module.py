from __future__ import annotations

import dataclasses
import logging

import pytest
import pytorch_lightning as pl
import torch

from tests.trainables.modes.fusion._fitting import (
    VOCAB_SIZE,
    FittedRun,
    cpu_trainer,
    snapshot,
    untrained_models,
    val_batches,
)
from trainables.data.dataset import GraphLoader
from trainables.errors import UserError
from trainables.models import DQNConfig, GATClassifier, GATConfig, ScoreScale
from trainables.modes.fusion import FusionModule, raw_vgae_scores


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fusion_module_fit_logs_training_validation_and_baseline_metrics(
    fitted: FittedRun,
) -> None:
    for name in (
        "val_f1",
        "val_auroc",
        "val_loss",
        "val_gat_f1",
        "val_gat_auroc",
        "val_vgae_auroc",
        "train_loss",
        "train_reward",
        "train_epsilon",
    ):
        assert name in fitted.metrics, name
    assert 0.0 <= fitted.metrics["val_f1"] <= 1.0
    assert -1.0 <= fitted.metrics["train_reward"] <= 1.0


def test_fusion_module_fit_does_not_warn_about_the_optimiser(fitted: FittedRun) -> None:
    assert not [m for m in fitted.warnings if "optimiz" in m.lower()]


def test_fusion_module_fit_leaves_vgae_and_gat_unchanged(fitted: FittedRun) -> None:
    module = fitted.module
    assert _same(snapshot(module.vgae), fitted.before["vgae"])
    assert _same(snapshot(module.gat), fitted.before["gat"])
    assert not any(p.requires_grad for p in [*module.vgae.parameters(), *module.gat.parameters()])
    module.train()
    assert not module.vgae.training and not module.gat.training


def test_fusion_module_fit_changes_the_q_network(fitted: FittedRun) -> None:
    after = snapshot(fitted.module.model.q_network)
    before = {
        k.removeprefix("q_network."): v
        for k, v in fitted.before["q"].items()
        if k.startswith("q_network.")
    }
    assert before.keys() == after.keys()
    assert not all(torch.equal(before[k], after[k]) for k in after)


def test_fusion_module_fit_decays_epsilon(fitted: FittedRun) -> None:
    epsilon = fitted.module.agent.epsilon
    assert epsilon < fitted.module.agent.config.epsilon_start
    assert fitted.metrics["train_epsilon"] == pytest.approx(epsilon)


def test_fusion_module_fit_scales_vgae_scores_of_the_training_set(fitted: FittedRun) -> None:
    assert fitted.datamodule.train_set is not None
    loader = GraphLoader(fitted.datamodule.train_set, batch_size=64)
    expected = ScoreScale.fit(raw_vgae_scores(fitted.module.vgae, loader))
    scale = fitted.module.model.scale
    assert scale.low == pytest.approx(expected.low)
    assert scale.high == pytest.approx(expected.high)


def test_fusion_module_attack_score_is_in_unit_interval(fitted: FittedRun) -> None:
    fitted.module.eval()
    scores = torch.cat([fitted.module.attack_score(b) for b in val_batches(fitted)])
    assert len(scores) == len(fitted.datamodule.val_set or [])
    assert bool(((scores >= 0) & (scores <= 1)).all())


def test_fusion_module_keeps_a_loaded_scale_when_fitting(fitted: FittedRun) -> None:
    vgae, gat = fitted.module.vgae, fitted.module.gat
    module = FusionModule(vgae, gat, size="student", seed=0)
    module.model.set_scale(ScoreScale(low=-1.0, high=7.0))
    cpu_trainer(1, limit_train_batches=1, limit_val_batches=1).fit(
        module, datamodule=fitted.datamodule
    )
    assert module.model.scale == ScoreScale(low=-1.0, high=7.0)


# One validation batch of untrained models: no positive there, and Lightning's eval-mode note.
@pytest.mark.filterwarnings("ignore:No positive samples in targets")
@pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode")
def test_fusion_module_says_at_info_only_the_scale_a_run_fits(
    fitted: FittedRun, caplog: pytest.LogCaptureFixture
) -> None:
    # The tuner's probes fit a throwaway module's scale on the probe's graphs: a fusion run
    # with --tune-batch-size logged "fitted on 75 training graphs" (its eval probe) twice.
    from trainables.batching.heaviest import ProbeDataModule

    train_set = fitted.datamodule.train_set
    assert train_set is not None
    vgae, gat = fitted.module.vgae, fitted.module.gat
    probe = ProbeDataModule(train_set, batch_size=8, for_eval=False)
    with caplog.at_level(logging.DEBUG, logger="trainables.train"):
        for datamodule in (probe, fitted.datamodule):
            cpu_trainer(1, limit_train_batches=1, limit_val_batches=1).fit(
                FusionModule(vgae, gat, size="student", seed=0), datamodule=datamodule
            )
    fitted_lines = [r for r in caplog.records if "score scale" in r.getMessage()]
    assert [r.levelno for r in fitted_lines] == [logging.DEBUG, logging.INFO]


def test_fusion_module_fit_without_datamodule_raises(fitted: FittedRun) -> None:
    module = FusionModule(fitted.module.vgae, fitted.module.gat, size="student")
    with pytest.raises(UserError, match="needs a datamodule"):
        cpu_trainer(1).fit(module, train_dataloaders=fitted.datamodule.train_dataloader())


def test_fusion_module_metrics_count_a_fused_score_of_one_half_as_attack() -> None:
    # fusion_reward calls `fused >= 0.5` an attack; the reported metrics must agree.
    metrics = FusionModule(*untrained_models(), size="student").make_metrics()
    metrics.update(torch.tensor([0.5, 0.4999]), torch.tensor([1, 0]))
    assert float(metrics.compute()["accuracy"]) == 1.0


def test_fusion_module_learning_rate_overrides_the_preset() -> None:
    module = FusionModule(*untrained_models(), size="student", learning_rate=3e-4)
    assert module.model.config.learning_rate == 3e-4
    assert module.agent.optimizer.param_groups[0]["lr"] == 3e-4
    assert module.model.config.hidden_channels == DQNConfig.preset("student").hidden_channels


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_learn_steps_per_batch": 0}, "num_learn_steps_per_batch must be >= 1"),
        ({"penalty": -1.0}, "penalty is subtracted and must be >= 0"),
    ],
)
def test_fusion_module_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(UserError, match=message):
        FusionModule(*untrained_models(), size="student", **kwargs)  # type: ignore[arg-type]


def test_fusion_module_rejects_models_of_different_vocabularies() -> None:
    vgae, _ = untrained_models(VOCAB_SIZE)
    _, gat = untrained_models(VOCAB_SIZE + 1)
    with pytest.raises(UserError, match="same vocabulary"):
        FusionModule(vgae, gat)


def test_fusion_module_rejects_a_gat_with_more_than_two_classes() -> None:
    vgae, _ = untrained_models()
    config = dataclasses.replace(GATConfig.preset("student", vocab_size=VOCAB_SIZE), num_classes=3)
    with pytest.raises(UserError, match="two-class GAT"):
        FusionModule(vgae, GATClassifier(config))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fusion_module_fit_moves_the_agent_to_the_gpu(fitted: FittedRun) -> None:
    module = FusionModule(fitted.module.vgae, fitted.module.gat, size="student", seed=0)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="gpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=fitted.datamodule)
    agent = module.agent
    assert agent.num_learn_steps > 0
    for tensor in (agent.alphas, agent.buffer.states, next(agent.q_network.parameters())):
        assert tensor.device.type == "cuda"
    batch = next(iter(fitted.datamodule.val_dataloader())).to(module.device)
    assert module.attack_score(batch).device.type == "cuda"
