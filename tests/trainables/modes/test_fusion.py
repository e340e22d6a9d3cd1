from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch_geometric.data import Batch

from trainables.data import CANGraphDataModule, GraphSource
from trainables.data.dataset import GraphLoader
from trainables.errors import UserError
from trainables.models import (
    VGAE,
    DQNConfig,
    FusionAgent,
    GATClassifier,
    GATConfig,
    ScoreScale,
    VGAEConfig,
    load_weights,
)
from trainables.modes.fusion import FusionModule, FusionPolicy, fusion_step, raw_vgae_scores

VOCAB_SIZE = 8


def _trainer(max_epochs: int = 2, **overrides: object) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **overrides,  # type: ignore[arg-type]
    )


def _models(vocab_size: int = VOCAB_SIZE, *, seed: int = 0) -> tuple[VGAE, GATClassifier]:
    torch.manual_seed(seed)
    vgae = VGAE(VGAEConfig.preset("student", vocab_size=vocab_size))
    gat = GATClassifier(GATConfig.preset("student", vocab_size=vocab_size))
    return vgae.eval(), gat.eval()


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@dataclass(frozen=True)
class FittedRun:
    module: FusionModule
    datamodule: CANGraphDataModule
    metrics: dict[str, float]
    before: dict[str, dict[str, torch.Tensor]]
    warnings: list[str]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> FittedRun:
    """Two epochs of fusion over untrained student models on 225 synthetic graphs."""
    source = GraphSource(num_messages=30_000, cache_dir=tmp_path_factory.mktemp("cache"))
    datamodule = CANGraphDataModule(source, batch_size=32, seed=0)
    datamodule.setup("fit")
    assert datamodule.vocab is not None
    vgae, gat = _models(len(datamodule.vocab))
    module = FusionModule(vgae, gat, size="student", seed=0)
    before = {
        name: _snapshot(m) for name, m in (("vgae", vgae), ("gat", gat), ("q", module.model))
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _trainer()
        trainer.fit(module, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return FittedRun(module, datamodule, metrics, before, [str(w.message) for w in caught])


def _val_batches(run: FittedRun) -> Iterator[Batch]:
    yield from run.datamodule.val_dataloader()


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
    assert _same(_snapshot(module.vgae), fitted.before["vgae"])
    assert _same(_snapshot(module.gat), fitted.before["gat"])
    assert not any(p.requires_grad for p in [*module.vgae.parameters(), *module.gat.parameters()])
    module.train()
    assert not module.vgae.training and not module.gat.training


def test_fusion_module_fit_changes_the_q_network(fitted: FittedRun) -> None:
    after = _snapshot(fitted.module.model.q_network)
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
    scores = torch.cat([fitted.module.attack_score(b) for b in _val_batches(fitted)])
    assert len(scores) == len(fitted.datamodule.val_set or [])
    assert bool(((scores >= 0) & (scores <= 1)).all())


def test_fusion_policy_state_dict_round_trips_to_identical_decisions(
    fitted: FittedRun, tmp_path: Path
) -> None:
    module = fitted.module.eval()
    state = module.model.state_dict()
    assert not [k for k in state if k.startswith(("vgae", "gat", "target"))]
    assert {"alphas", "scale_low", "scale_high"} <= state.keys()
    torch.save(state, tmp_path / "model.pt")
    assert dataclasses.asdict(module.model.config)["num_actions"] == 21

    fresh = FusionModule(module.vgae, module.gat, size="student", seed=1).eval()
    load_weights(fresh.model, tmp_path / "model.pt")
    for batch in _val_batches(fitted):
        states = module.states(batch)
        assert torch.equal(fresh.model.greedy_actions(states), module.model.greedy_actions(states))
        assert torch.equal(fresh.attack_score(batch), module.attack_score(batch))


def test_fusion_module_keeps_a_loaded_scale_when_fitting(fitted: FittedRun) -> None:
    vgae, gat = fitted.module.vgae, fitted.module.gat
    module = FusionModule(vgae, gat, size="student", seed=0)
    module.model.set_scale(ScoreScale(low=-1.0, high=7.0))
    _trainer(1, limit_train_batches=1, limit_val_batches=1).fit(
        module, datamodule=fitted.datamodule
    )
    assert module.model.scale == ScoreScale(low=-1.0, high=7.0)


def test_fusion_module_fit_without_datamodule_raises(fitted: FittedRun) -> None:
    module = FusionModule(fitted.module.vgae, fitted.module.gat, size="student")
    with pytest.raises(UserError, match="needs a datamodule"):
        _trainer(1).fit(module, train_dataloaders=fitted.datamodule.train_dataloader())


def test_fusion_module_metrics_count_a_fused_score_of_one_half_as_attack() -> None:
    # fusion_reward calls `fused >= 0.5` an attack; the reported metrics must agree.
    metrics = FusionModule(*_models(), size="student").make_metrics()
    metrics.update(torch.tensor([0.5, 0.4999]), torch.tensor([1, 0]))
    assert float(metrics.compute()["accuracy"]) == 1.0


def test_fusion_module_learning_rate_overrides_the_preset() -> None:
    module = FusionModule(*_models(), size="student", learning_rate=3e-4)
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
        FusionModule(*_models(), size="student", **kwargs)  # type: ignore[arg-type]


def test_fusion_module_rejects_models_of_different_vocabularies() -> None:
    vgae, _ = _models(VOCAB_SIZE)
    _, gat = _models(VOCAB_SIZE + 1)
    with pytest.raises(UserError, match="same vocabulary"):
        FusionModule(vgae, gat)


def test_fusion_module_rejects_a_gat_with_more_than_two_classes() -> None:
    vgae, _ = _models()
    config = dataclasses.replace(GATConfig.preset("student", vocab_size=VOCAB_SIZE), num_classes=3)
    with pytest.raises(UserError, match="two-class GAT"):
        FusionModule(vgae, GATClassifier(config))


def test_fusion_policy_without_scale_raises() -> None:
    policy = FusionPolicy(DQNConfig.preset("student"))
    assert not policy.has_scale
    with pytest.raises(UserError, match="no VGAE score scale"):
        policy(torch.rand(2, 15))


def _bandit_states(num: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """States whose GAT probability is always right and whose VGAE score always wrong."""
    labels = torch.randint(2, (num,), generator=generator)
    states = torch.rand(num, 15, generator=generator) * 0.1
    states[:, 0] = 1.0 - labels.float()  # raw VGAE score: high on normal graphs
    states[:, 9] = 0.1 + 0.8 * labels.float()  # GAT attack probability
    return states, labels


def test_fusion_step_returns_no_loss_until_the_buffer_holds_a_batch() -> None:
    agent = FusionAgent(DQNConfig(hidden_channels=(8,), batch_size=16), seed=0)
    states, labels = _bandit_states(8, torch.Generator().manual_seed(0))
    loss, mean_reward = fusion_step(agent, ScoreScale(0.0, 1.0), states, labels)
    assert loss is None and agent.num_learn_steps == 0
    assert mean_reward in {x / 8 for x in range(-8, 9, 2)}
    loss, _ = fusion_step(agent, ScoreScale(0.0, 1.0), states, labels, num_learn_steps=3)
    assert loss is not None and agent.num_learn_steps == 3


def test_fusion_step_reward_is_that_of_the_fused_decision() -> None:
    # epsilon 0: always the greedy action; reward 2, penalty 0.5.
    config = DQNConfig(hidden_channels=(8,), epsilon_start=0.0, epsilon_end=0.0)
    agent = FusionAgent(config, seed=0)
    states, labels = _bandit_states(32, torch.Generator().manual_seed(1))
    alphas = agent.alphas[agent.act(states, explore=False)]
    fused = (1 - alphas) * states[:, 0] + alphas * states[:, 9]
    right = ((fused >= 0.5).long() == labels).float()
    expected = float((2.0 * right - 0.5 * (1 - right)).mean())
    _, mean_reward = fusion_step(
        agent, ScoreScale(0.0, 1.0), states, labels, reward=2.0, penalty=0.5
    )
    assert mean_reward == pytest.approx(expected)


def test_fusion_step_learns_to_trust_the_right_model() -> None:
    config = DQNConfig(
        hidden_channels=(16,), batch_size=64, learning_rate=1e-2, epsilon_decay=0.98
    )
    agent = FusionAgent(config, seed=0)
    generator = torch.Generator().manual_seed(2)
    for _ in range(60):
        fusion_step(agent, ScoreScale(0.0, 1.0), *_bandit_states(64, generator), num_learn_steps=2)
    states, labels = _bandit_states(256, generator)
    policy = FusionPolicy(config, q_network=agent.q_network)
    policy.set_scale(ScoreScale(0.0, 1.0))
    decisions = (policy(states) >= 0.5).long()
    assert float((decisions == labels).float().mean()) > 0.95


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
