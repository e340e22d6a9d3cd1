from __future__ import annotations

import pytest
import torch

from tests.trainables.models._graphs import VOCAB_SIZE, make_graph, small_batch
from trainables.errors import UserError
from trainables.models.vgae.model import VGAE, VGAEConfig


def test_vgae_config_preset_teacher_and_student() -> None:
    teacher = VGAEConfig.preset("teacher", vocab_size=VOCAB_SIZE)
    student = VGAEConfig.preset("student", vocab_size=VOCAB_SIZE)
    assert (teacher.hidden_channels, teacher.latent_dim, teacher.num_heads) == (
        (1024, 512, 96),
        96,
        4,
    )
    assert (student.hidden_channels, student.latent_dim, student.num_heads) == (
        (80, 40, 16),
        16,
        1,
    )


def test_vgae_config_preset_rejects_unknown_size() -> None:
    with pytest.raises(UserError, match="unknown model size 'medium'"):
        VGAEConfig.preset("medium", vocab_size=VOCAB_SIZE)


def test_vgae_config_rejects_width_not_multiple_of_heads() -> None:
    with pytest.raises(UserError, match=r"positive multiples of num_heads=4, got \(64, 30\)"):
        VGAEConfig(vocab_size=VOCAB_SIZE, hidden_channels=(64, 30), num_heads=4)


def test_vgae_config_rejects_bad_dropout() -> None:
    with pytest.raises(UserError, match=r"VGAE dropout must be in \[0, 1\), got -0.1"):
        VGAEConfig(vocab_size=VOCAB_SIZE, dropout=-0.1)


@pytest.mark.parametrize("size", ["teacher", "student"])
def test_vgae_output_shapes(size: str) -> None:
    config = VGAEConfig.preset(size, vocab_size=VOCAB_SIZE)
    out = VGAE(config)(small_batch())
    assert out.features.shape == (11, 10)
    assert out.id_logits.shape == (11, VOCAB_SIZE + 1)
    assert out.neighbour_logits.shape == (11, VOCAB_SIZE + 1)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (11, config.latent_dim)
    assert ((out.features > 0) & (out.features < 1)).all()


def test_vgae_samples_in_training_and_uses_mean_in_eval() -> None:
    torch.manual_seed(0)
    model = VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE))
    g = make_graph(4)
    trained = model.train()(g)
    assert not torch.allclose(trained.z, trained.mu)
    evaluated = model.eval()(g)
    assert torch.equal(evaluated.z, evaluated.mu)


def test_vgae_tolerates_out_of_range_vocabulary_index() -> None:
    model = VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE)).eval()
    out = model(make_graph(2, ids=[VOCAB_SIZE + 1, 10_000]))
    assert torch.isfinite(out.id_logits).all()
