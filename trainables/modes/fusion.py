"""`fusion` mode: a DQN agent learns, per graph, how far to trust a frozen GAT over a frozen VGAE.

Each graph is a one-step episode. The state is `fusion_state` (15 values from the two models),
an action is a GAT weight `alpha` in `linspace(0, 1, 21)`, the fused score is
`(1 - alpha) * scaled VGAE score + alpha * GAT attack probability`, the decision is
`fused >= 0.5`, and the reward is +1 for a right decision and -1 for a wrong one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
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
    action_alphas,
    fuse_scores,
    fusion_reward,
    fusion_state,
    graph_anomaly_scores,
    state_scores,
)
from trainables.modes.base import DetectionModule
from trainables.modes.metrics import detection_metrics

__all__ = ["FusionModule", "FusionPolicy", "fusion_step", "raw_vgae_scores"]

logger = logging.getLogger("trainables.train")

# torchmetrics calls `score > threshold` an attack, `fusion_reward` `score >= 0.5`: the largest
# float32 below 0.5 makes the reported metrics count exactly the decisions that were rewarded.
_METRIC_THRESHOLD = float(torch.nextafter(torch.tensor(0.5), torch.tensor(0.0)))


class FusionPolicy(nn.Module):
    """The learnt fusion, all that inference needs: Q-network, VGAE score scale and alphas.

    Its state dict holds the Q-network's weights, the fitted `ScoreScale` bounds (`scale_low`,
    `scale_high`; NaN until fitted) and the `alphas`; `config` rebuilds the shapes.

    Args:
        config: Shape of the Q-network and number of actions.
        q_network: The Q-network to hold (default: a fresh one shaped by `config`).

    Example:
        >>> policy = FusionPolicy(DQNConfig.preset("student"))
        >>> policy.set_scale(ScoreScale(low=0.0, high=2.0))
        >>> policy(torch.rand(3, 15)).shape
        torch.Size([3])
    """

    config: DQNConfig
    q_network: QNetwork
    scale_low: Tensor
    scale_high: Tensor
    alphas: Tensor

    def __init__(self, config: DQNConfig, *, q_network: QNetwork | None = None) -> None:
        super().__init__()
        self.config = config
        self.q_network = q_network or QNetwork(
            hidden_channels=config.hidden_channels, num_actions=config.num_actions
        )
        self.register_buffer("alphas", action_alphas(config.num_actions))
        self.register_buffer("scale_low", torch.tensor(math.nan))
        self.register_buffer("scale_high", torch.tensor(math.nan))

    @property
    def has_scale(self) -> bool:
        """Whether the VGAE score scale was fitted (or loaded)."""
        return bool(torch.isfinite(self.scale_low) & torch.isfinite(self.scale_high))

    @property
    def scale(self) -> ScoreScale:
        """The VGAE score scale the alphas were learnt with.

        Raises:
            UserError: The scale was never fitted nor loaded.
        """
        if not self.has_scale:
            raise UserError(
                "the fusion policy has no VGAE score scale: fit it (FusionModule does at the "
                "start of training) or load a trained policy's state dict"
            )
        return ScoreScale(low=float(self.scale_low), high=float(self.scale_high))

    def set_scale(self, scale: ScoreScale) -> None:
        """Store `scale` in the buffers (and so in the state dict)."""
        self.scale_low.fill_(scale.low)
        self.scale_high.fill_(scale.high)

    def greedy_actions(self, states: Tensor) -> Tensor:
        """The action of highest Q-value per state, int64 `[G]`."""
        with torch.no_grad():
            return self.q_network(states).argmax(dim=1)

    def fuse(self, states: Tensor, actions: Tensor) -> Tensor:
        """Fused attack score `[G]` in [0, 1] of taking `actions` in `states`."""
        vgae_score, gat_probability = state_scores(states)
        return fuse_scores(self.scale(vgae_score), gat_probability, self.alphas[actions])

    def forward(self, states: Tensor) -> Tensor:
        """Greedy fused attack score `[G]` in [0, 1] of `fusion_state` rows `[G, 15]`."""
        return self.fuse(states, self.greedy_actions(states))


def raw_vgae_scores(vgae: VGAE, loader: Any, *, device: torch.device | str = "cpu") -> Tensor:
    """The raw (unscaled) VGAE anomaly score of every graph of `loader`, on the CPU.

    Args:
        vgae: A trained VGAE, on `device`.
        loader: An iterable of graph batches (e.g. a PyG `DataLoader`).
        device: Where the batches are moved before scoring. Default "cpu".

    Returns:
        float `[num_graphs]`, the same score `state_scores` reads back from a fusion state.
    """
    scores = [graph_anomaly_scores(vgae, batch.to(device)).cpu() for batch in loader]
    return torch.cat(scores) if scores else torch.zeros(0)


def fusion_step(
    agent: FusionAgent,
    scale: ScoreScale,
    states: Tensor,
    labels: Tensor,
    *,
    num_learn_steps: int = 1,
    reward: float = 1.0,
    penalty: float = 1.0,
) -> tuple[float | None, float]:
    """One interaction of `agent` with a batch of graphs, then `num_learn_steps` DQN updates.

    Explore (epsilon-greedy) -> fuse the scaled VGAE score with the GAT probability ->
    reward each decision -> store the one-step transitions -> learn from replayed ones.

    Args:
        agent: The learning agent.
        scale: Normalisation of the raw VGAE score (`ScoreScale`).
        states: `fusion_state` rows `[G, 15]`.
        labels: Graph labels `[G]` (1 = attack).
        num_learn_steps: DQN updates after storing the batch. Default 1.
        reward: Reward of a right decision. Default 1.
        penalty: Amount subtracted for a wrong decision. Default 1.

    Returns:
        `(loss, mean_reward)`: the mean TD loss of the updates (None when the replay buffer
        was still too small for any), and the mean reward of the batch's decisions.

    Example:
        >>> agent = FusionAgent(DQNConfig(hidden_channels=(8,), batch_size=4), seed=0)
        >>> loss, mean_reward = fusion_step(agent, ScoreScale(0.0, 1.0), torch.rand(6, 15),
        ...                                 torch.tensor([0, 1, 0, 1, 0, 1]))
        >>> loss is not None and -1.0 <= mean_reward <= 1.0
        True
    """
    actions = agent.act(states)
    vgae_score, gat_probability = state_scores(states)
    fused = fuse_scores(scale(vgae_score), gat_probability, agent.alphas[actions])
    rewards = fusion_reward(fused, labels, reward=reward, penalty=penalty)
    dones = torch.ones_like(rewards, dtype=torch.bool)  # one-step episodes: no bootstrapping
    agent.remember(states, actions, rewards, states, dones)
    losses = [loss for _ in range(num_learn_steps) if (loss := agent.learn_step()) is not None]
    mean_loss = sum(losses) / len(losses) if losses else None
    return mean_loss, float(rewards.mean())


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

    def train(self, mode: bool = True) -> FusionModule:
        super().train(mode)
        self.vgae.eval()  # frozen inputs: no dropout, no latent sampling, ever
        self.gat.eval()
        return self

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
        logger.info(
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
