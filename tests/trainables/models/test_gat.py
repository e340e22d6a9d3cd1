from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from tests.trainables.models._graphs import VOCAB_SIZE, collate, make_graph, small_batch
from trainables.errors import UserError
from trainables.models.gat import GATClassifier, GATConfig


def test_gat_config_preset_teacher_and_student() -> None:
    teacher = GATConfig.preset("teacher", vocab_size=VOCAB_SIZE)
    student = GATConfig.preset("student", vocab_size=VOCAB_SIZE)
    assert (teacher.hidden_channels, teacher.num_layers, teacher.num_heads) == (64, 5, 8)
    assert (teacher.id_embedding_dim, teacher.dropout) == (32, 0.2)
    assert (student.hidden_channels, student.num_layers, student.num_heads) == (24, 2, 4)
    assert (student.id_embedding_dim, student.dropout) == (8, 0.1)


def test_gat_config_preset_rejects_unknown_size() -> None:
    with pytest.raises(UserError, match="unknown model size 'tiny'"):
        GATConfig.preset("tiny", vocab_size=VOCAB_SIZE)


def test_gat_config_is_frozen() -> None:
    config = GATConfig(vocab_size=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_layers = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_layers", 0, "GAT num_layers must be >= 1, got 0"),
        ("dropout", 1.0, r"GAT dropout must be in \[0, 1\), got 1.0"),
        ("num_classes", 1, "GAT num_classes must be >= 2, got 1"),
        ("vocab_size", 0, "vocab_size must be a positive int"),
    ],
)
def test_gat_config_rejects_bad_value(field: str, value: float, message: str) -> None:
    kwargs: dict[str, float] = {"vocab_size": VOCAB_SIZE, field: value}
    with pytest.raises(UserError, match=message):
        GATConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", ["teacher", "student"])
def test_gat_classifier_output_shapes(size: str) -> None:
    model = GATClassifier(GATConfig.preset(size, vocab_size=VOCAB_SIZE)).eval()
    batch = small_batch()
    logits = model(batch)
    embedding = model.encode(batch)
    assert logits.shape == (3, 2)
    assert embedding.shape == (3, model.embedding_dim)
    assert torch.allclose(model.classify(embedding), logits)
    assert torch.isfinite(logits).all()


def test_gat_classifier_embedding_dim_is_jumping_knowledge_width() -> None:
    model = GATClassifier(GATConfig.preset("teacher", vocab_size=VOCAB_SIZE))
    assert model.embedding_dim == 64 * 8 * 5


def test_gat_classifier_tolerates_out_of_range_vocabulary_index() -> None:
    model = GATClassifier(GATConfig.preset("student", vocab_size=VOCAB_SIZE)).eval()
    g = make_graph(3, ids=[VOCAB_SIZE + 50, -2, 1])
    assert torch.isfinite(model(g)).all()


def test_gat_classifier_batch_equals_graphs_alone() -> None:
    model = GATClassifier(GATConfig.preset("student", vocab_size=VOCAB_SIZE)).eval()
    graphs = [make_graph(1, seed=1), make_graph(3, seed=2), make_graph(7, seed=3)]
    alone = torch.cat([model(g) for g in graphs])
    assert torch.allclose(model(collate(graphs)), alone, atol=1e-5)


def test_gat_classifier_learns_separable_graphs() -> None:
    torch.manual_seed(0)
    graphs = [
        make_graph(2 + i % 4, seed=i, label=i % 2, level=0.8 if i % 2 else 0.2) for i in range(16)
    ]
    batch = collate(graphs)
    model = GATClassifier(GATConfig.preset("student", vocab_size=VOCAB_SIZE))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        optimiser.zero_grad()
        loss = F.cross_entropy(model(batch), batch.y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(model.eval()(batch).argmax(dim=1), batch.y)
