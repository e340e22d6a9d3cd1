from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trainables.models._graphs import VOCAB_SIZE, small_batch
from trainables.errors import UserError
from trainables.models.checkpoint import load_weights
from trainables.models.gat import GATClassifier, GATConfig
from trainables.models.vgae import VGAE, VGAEConfig


def test_load_weights_round_trips_gat(tmp_path: Path) -> None:
    saved = GATClassifier(GATConfig.preset("student", vocab_size=VOCAB_SIZE)).eval()
    path = tmp_path / "gat.pt"
    torch.save(saved.state_dict(), path)
    loaded = load_weights(GATClassifier(GATConfig.preset("student", vocab_size=VOCAB_SIZE)), path)
    batch = small_batch()
    assert torch.equal(loaded.eval()(batch), saved(batch))


def test_load_weights_round_trips_vgae(tmp_path: Path) -> None:
    saved = VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE)).eval()
    path = tmp_path / "vgae.pt"
    torch.save(saved.state_dict(), path)
    loaded = load_weights(VGAE(VGAEConfig.preset("student", vocab_size=VOCAB_SIZE)), path).eval()
    batch = small_batch()
    for a, b in zip(loaded(batch), saved(batch), strict=True):
        assert torch.equal(a, b)


def test_load_weights_names_shape_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "gat.pt"
    torch.save(GATClassifier(GATConfig(vocab_size=5, num_layers=1)).state_dict(), path)
    model = GATClassifier(GATConfig(vocab_size=9, num_layers=1))
    with pytest.raises(
        UserError,
        match=r"gat\.pt does not match GATClassifier: shape mismatch: "
        r"encoder\.id_embedding\.weight \(6, 32\) in the file vs \(10, 32\) in the model",
    ):
        load_weights(model, path)


def test_load_weights_names_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "student.pt"
    torch.save(GATClassifier(GATConfig.preset("student", vocab_size=5)).state_dict(), path)
    teacher = GATClassifier(GATConfig.preset("teacher", vocab_size=5))
    with pytest.raises(UserError, match=r"missing keys: encoder\.convs\.2\.") as caught:
        load_weights(teacher, path)
    assert "Build the model with the config (size, vocab_size)" in str(caught.value)


def test_load_weights_names_unexpected_keys(tmp_path: Path) -> None:
    path = tmp_path / "vgae.pt"
    torch.save(VGAE(VGAEConfig.preset("student", vocab_size=5)).state_dict(), path)
    gat = GATClassifier(GATConfig.preset("student", vocab_size=5))
    with pytest.raises(UserError, match=r"vgae\.pt does not match GATClassifier") as caught:
        load_weights(gat, path)
    assert "missing keys: head.0.weight" in str(caught.value)
    assert "unexpected keys: encoder.convs.2." in str(caught.value)
    assert " and 17 more" in str(caught.value)  # long lists are cut short


def test_load_weights_rejects_missing_file(tmp_path: Path) -> None:
    model = GATClassifier(GATConfig.preset("student", vocab_size=5))
    with pytest.raises(UserError, match=r"checkpoint .*nope\.pt does not exist"):
        load_weights(model, tmp_path / "nope.pt")


def test_load_weights_rejects_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    model = GATClassifier(GATConfig.preset("student", vocab_size=5))
    with pytest.raises(UserError, match=r"bad\.pt is not a weights-only state dict"):
        load_weights(model, path)


def test_load_weights_rejects_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"config": GATConfig(vocab_size=5)}, path)  # not loadable with weights_only
    model = GATClassifier(GATConfig.preset("student", vocab_size=5))
    with pytest.raises(UserError, match=r"model\.pt is not a weights-only state dict"):
        load_weights(model, path)


def test_load_weights_rejects_a_bare_tensor(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    model = GATClassifier(GATConfig.preset("student", vocab_size=5))
    with pytest.raises(UserError, match=r"tensor\.pt holds a Tensor, not a state dict"):
        load_weights(model, path)
