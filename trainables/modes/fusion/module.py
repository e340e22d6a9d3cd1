"""`FusionModule`: the LightningModule of the `fusion` mode; it calls `fusion_step` per batch."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch, Data
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAUROC, BinaryF1Score

from trainables.errors import UserError
from trainables.models import (
    VGAE,
    DQNConfig,
    FusionAgent,
    GATClassifier,
    ModelSize,
    QNetwork,
    ScoreScale,
    fusion_reward,
    fusion_state,
    state_scores,
)
from trainables.modes.base import DetectionModule
from trainables.modes.fusion.policy import FusionPolicy
from trainables.modes.fusion.step import fusion_step, raw_vgae_scores
from trainables.modes.metrics import detection_metrics

__all__ = ["FusionModule"]

logger = logging.getLogger("trainables.train")

# torchmetrics calls `score > threshold` an attack, `fusion_reward` `score >= 0.5`: the largest
# float32 below 0.5 makes the reported metrics count exactly the decisions that were rewarded.
_METRIC_THRESHOLD = float(torch.nextafter(torch.tensor(0.5), torch.tensor(0.0)))


def _place_agent(agent: FusionAgent, device: torch.device) -> None:
    """Move the agent's non-module tensors; its networks are submodules and move with Lightning."""
    agent.device = device
    agent.alphas = agent.alphas.to(device)
    buffer = agent.buffer
    for name in ("states", "actions", "rewards", "next_states", "dones"):
        setattr(buffer, name, getattr(buffer, name).to(device))


class FusionModule(DetectionModule):
    """`fusion` mode: a DQN over the states of a frozen VGAE and a frozen GAT.

    The VGAE and GAT are frozen (no gradients, always in eval mode, outside `model`). At the
    start of fitting, unless `model` already has one, the VGAE score scale is fitted on the raw
    scores of every training graph (both classes): the training set is what the agent learns
    on, and validation stays untouched for model selection and early stopping. Training is
    manual: per batch, `fusion_step` (explore, reward, remember, `num_learn_steps_per_batch`
    updates); it logs `train_loss` (TD loss, once the buffer holds a batch), `train_reward`
    and, per epoch, `train_epsilon`. Validation and test score each graph with the greedy
    action; `val_loss` is the TD loss of those actions. Validation also logs the inputs on
    their own: `val_gat_f1`, `val_gat_auroc`, `val_vgae_auroc`.

    Args:
        vgae: A trained VGAE.
        gat: A trained two-class GAT on the same vocabulary.
        size: Preset of the DQN (`DQNConfig.preset`) when `config` is None. Default "teacher".
        config: DQN hyperparameters (default: the `size` preset).
        learning_rate: Overrides the DQN's Adam learning rate when given. Default None.
        num_learn_steps_per_batch: DQN updates per training batch. Default 4.
        reward: Reward of a right fused decision. Default 1.
        penalty: Amount subtracted for a wrong one. Default 1.
        seed: Seeds the Q-network, exploration and replay sampling. Default None.

    Example:
        >>> from trainables.models import GATConfig, VGAEConfig
        >>> module = FusionModule(VGAE(VGAEConfig.preset("student", vocab_size=8)),
        ...                       GATClassifier(GATConfig.preset("student", vocab_size=8)),
        ...                       size="student", seed=0)
        >>> module.model.config.num_actions, module.automatic_optimization
        (21, False)
    """

    model: FusionPolicy
    vgae: VGAE
    gat: GATClassifier
    target_network: QNetwork

    frozen = ("vgae", "gat")

    def __init__(
        self,
        vgae: VGAE,
        gat: GATClassifier,
        *,
        size: ModelSize = "teacher",
        config: DQNConfig | None = None,
        learning_rate: float | None = None,
        num_learn_steps_per_batch: int = 4,
        reward: float = 1.0,
        penalty: float = 1.0,
        seed: int | None = None,
    ) -> None:
        config = config or DQNConfig.preset(size)
        if learning_rate is not None:
            config = dataclasses.replace(config, learning_rate=learning_rate)
        if gat.config.num_classes != 2:
            raise UserError(f"fusion needs a two-class GAT, got {gat.config.num_classes}")
        if vgae.config.vocab_size != gat.config.vocab_size:
            raise UserError(
                "fusion needs a VGAE and a GAT trained on the same vocabulary, got vocab sizes"
                f" {vgae.config.vocab_size} (VGAE) and {gat.config.vocab_size} (GAT)"
            )
        if num_learn_steps_per_batch < 1:
            raise UserError(
                f"num_learn_steps_per_batch must be >= 1, got {num_learn_steps_per_batch}"
            )
        if penalty < 0:
            raise UserError(f"fusion penalty is subtracted and must be >= 0, got {penalty=}")
        super().__init__(learning_rate=config.learning_rate)
        self.automatic_optimization = False
        self.vgae = vgae.requires_grad_(False).eval()
        self.gat = gat.requires_grad_(False).eval()
        self.agent = FusionAgent(config, seed=seed)
        # The agent's networks are submodules, so Lightning moves them with the module.
        self.model = FusionPolicy(config, q_network=self.agent.q_network)
        self.target_network = self.agent.target_network
        self.num_learn_steps_per_batch = num_learn_steps_per_batch
        self.reward = reward
        self.penalty = penalty
        # Each input on its own, for comparison; fed separately, so no shared compute groups.
        self.baseline_metrics = MetricCollection(
            {"gat_f1": BinaryF1Score(), "gat_auroc": BinaryAUROC(), "vgae_auroc": BinaryAUROC()},
            compute_groups=False,
        )

    def states(self, batch: Data) -> Tensor:
        """`fusion_state` of every graph of `batch`, `[G, 15]`."""
        return fusion_state(self.vgae, self.gat, batch)

    def make_metrics(self) -> MetricCollection:
        return detection_metrics(threshold=_METRIC_THRESHOLD)

    # --- Lightning hooks ----------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        # The agent steps its own Adam; handing it over (manual optimisation: Lightning never
        # steps it) lets Lightning move its state between devices, and avoids the `None` warning.
        return self.agent.optimizer

    def on_fit_start(self) -> None:
        _place_agent(self.agent, self.device)

    def setup(self, stage: str) -> None:
        # In `setup`, not `on_fit_start`: Lightning's batch-size tuner runs its steps in a
        # callback's `on_fit_start` (or `on_validation_start`), before the module's own hook.
        if self.model.has_scale:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            raise UserError("fusion training needs a datamodule: fit(module, datamodule=...)")
        scores = raw_vgae_scores(self.vgae, datamodule.train_dataloader(), device=self.device)
        self.model.set_scale(ScoreScale.fit(scores))
        # The tuner's probes fit a throwaway module's scale on the probe's graphs: not news.
        logger.log(
            logging.DEBUG if getattr(datamodule, "is_probe", False) else logging.INFO,
            "fusion: VGAE score scale [%.4g, %.4g] fitted on %d training graphs",
            self.model.scale_low,
            self.model.scale_high,
            scores.numel(),
        )

    def training_step(self, batch: Batch, batch_idx: int) -> None:  # type: ignore[override]
        # Manual optimisation: the agent has already learnt, there is no loss to hand back.
        loss, mean_reward = fusion_step(
            self.agent,
            self.model.scale,
            self.states(batch),
            batch.y,
            num_learn_steps=self.num_learn_steps_per_batch,
            reward=self.reward,
            penalty=self.penalty,
        )
        num_graphs = batch.num_graphs
        if loss is not None:
            self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=num_graphs)
        self.log("train_reward", mean_reward, on_step=False, on_epoch=True, batch_size=num_graphs)

    def on_train_epoch_end(self) -> None:
        self.log("train_epsilon", self.agent.epsilon)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        states = self.states(batch)
        actions = self.model.greedy_actions(states)
        fused = self.model.fuse(states, actions)
        rewards = fusion_reward(fused, batch.y, reward=self.reward, penalty=self.penalty)
        q_values = self.model.q_network(states).gather(1, actions.unsqueeze(1)).squeeze(1)
        self.log(
            "val_loss",
            F.smooth_l1_loss(q_values, rewards),
            on_step=False,
            on_epoch=True,
            batch_size=batch.num_graphs,
        )
        self.val_metrics.update(fused, batch.y)
        vgae_score, gat_probability = state_scores(states)
        self.baseline_metrics["gat_f1"].update(gat_probability, batch.y)
        self.baseline_metrics["gat_auroc"].update(gat_probability, batch.y)
        self.baseline_metrics["vgae_auroc"].update(vgae_score, batch.y)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        for name, metric in self.baseline_metrics.items():
            self.log(f"val_{name}", float(metric.compute()))
            metric.reset()

    def attack_score(self, batch: Batch) -> Tensor:
        return self.model(self.states(batch))
