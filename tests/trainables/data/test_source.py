from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.trainables.data.helpers import ctt_rows, write_csv
from trainables.data.source import GraphSource, load_split
from trainables.errors import UserError


def make_dataset(root: Path, *, num: int = 1000) -> Path:
    """A small real dataset in the can-train-and-test layout."""
    for split, seed, attack_every in (
        ("train_01_attack_free", 1, 0),
        ("train_02_with_attacks", 2, 13),
        ("test_01_known_vehicle_known_attack", 3, 11),
    ):
        folder = root / "set_01" / split
        folder.mkdir(parents=True)
        write_csv(
            folder / f"capture-{seed}.csv.gz",
            ctt_rows(num, seed=seed, attack_every=attack_every, num_ids=6 + seed),
        )
    return root


def test_load_split_builds_then_hits_cache(tmp_path: Path) -> None:
    source = GraphSource(data_dir=make_dataset(tmp_path / "data"), cache_dir=tmp_path / "c")
    first = load_split(source, "train")
    second = load_split(source, "train")
    assert not first.cache_hit and second.cache_hit
    assert first.graphs.num_graphs == 20
    for field in ("x", "edge_index", "edge_attr", "y", "node_ptr", "edge_ptr"):
        np.testing.assert_array_equal(getattr(first.graphs, field), getattr(second.graphs, field))
    np.testing.assert_array_equal(first.vocab.ids, second.vocab.ids)


def test_load_split_changed_input_rebuilds(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data")
    source = GraphSource(data_dir=root, cache_dir=tmp_path / "c")
    before = load_split(source, "train")
    capture = root / "set_01" / "train_02_with_attacks" / "capture-2.csv.gz"
    write_csv(capture, ctt_rows(500, seed=2, attack_every=5))
    os.utime(capture, ns=(1, 1))
    after = load_split(source, "train")
    assert not after.cache_hit
    assert after.graphs.num_graphs == 15 != before.graphs.num_graphs


def test_a_capture_listed_in_two_train_folders_is_read_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # hcrl_sa lists its attack-free captures in train_01 and train_02: read twice, half of a
    # random validation split were copies of training graphs.
    root = make_dataset(tmp_path / "data")
    alone = load_split(GraphSource(data_dir=root, use_cache=False), "train")
    twice = root / "set_01" / "train_02_with_attacks" / "capture-1.csv.gz"
    write_csv(twice, ctt_rows(1000, seed=1, num_ids=7))  # train_01's capture, gzipped again
    # Equal length, other messages: both read.
    write_csv(root / "set_01" / "train_02_with_attacks" / "other.csv", ctt_rows(1000, seed=9))
    with caplog.at_level("WARNING", logger="trainables.data.source"):
        loaded = load_split(GraphSource(data_dir=root, cache_dir=tmp_path / "c"), "train")
    assert loaded.graphs.num_graphs == alone.graphs.num_graphs + 10
    assert "holds the same 1000 messages as" in caplog.text and "capture-1.csv.gz" in caplog.text
    assert caplog.text.count("holds the same") == 1


def test_load_split_window_changes_key(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data")
    load_split(GraphSource(data_dir=root, cache_dir=tmp_path / "c"), "train")
    other = load_split(GraphSource(data_dir=root, cache_dir=tmp_path / "c", window=50), "train")
    assert not other.cache_hit and other.graphs.num_graphs == 40


def test_load_split_vocabulary_comes_from_training_only(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data")
    test_folder = root / "set_01" / "test_01_known_vehicle_known_attack"
    write_csv(
        test_folder / "capture-3.csv.gz", [f"{i * 0.001:.6f},7{i % 3}0,00,0" for i in range(300)]
    )  # IDs 0x700-0x720: unseen
    source = GraphSource(data_dir=root, cache_dir=tmp_path / "c")
    test = load_split(source, "test")
    train = load_split(source, "train")
    np.testing.assert_array_equal(test.vocab.ids, train.vocab.ids)
    assert (test.graphs.x[:, 0] == 0).all()  # every test node is out of vocabulary
    assert train.graphs.x[:, 0].min() >= 1


def test_load_split_skip_reports_dropped_rows_on_hit_too(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data")
    bad = root / "set_01" / "train_01_attack_free" / "capture-1.csv.gz"
    write_csv(bad, [*ctt_rows(300, seed=1), "1.0,XYZ,00,0"])
    with pytest.raises(UserError, match=r"capture-1\.csv\.gz: line 302"):
        load_split(GraphSource(data_dir=root, cache_dir=tmp_path / "c"), "train")
    source = GraphSource(data_dir=root, cache_dir=tmp_path / "c", on_bad_rows="skip")
    for _ in range(2):
        loaded = load_split(source, "train")
        assert loaded.dropped_rows == {str(bad): 1}


def test_load_split_corrupt_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    source = GraphSource(data_dir=make_dataset(tmp_path / "data"), cache_dir=tmp_path / "c")
    load_split(source, "train")
    for entry in (tmp_path / "c" / "graphs").glob("*.npz"):
        entry.write_bytes(entry.read_bytes()[:100])
    again = load_split(source, "train")
    assert not again.cache_hit and again.graphs.num_graphs == 20
    assert load_split(source, "train").cache_hit


def test_load_split_without_cache_writes_nothing(tmp_path: Path) -> None:
    source = GraphSource(
        data_dir=make_dataset(tmp_path / "data"), cache_dir=tmp_path / "c", use_cache=False
    )
    assert not load_split(source, "train").cache_hit
    assert not (tmp_path / "c").exists()


def test_load_split_unknown_split(tmp_path: Path) -> None:
    source = GraphSource(data_dir=make_dataset(tmp_path / "data"), cache_dir=tmp_path / "c")
    with pytest.raises(UserError, match="--split val: no such split"):
        load_split(source, "val")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 1}, "--window must be an integer >= 2"),
        ({"stride": -1}, "--stride must be an integer >= 1"),
        ({"num_messages": 10}, "--num-messages must be >= 10 x --window"),
        ({"on_bad_rows": "drop"}, "--on-bad-rows must be 'error' or 'skip'"),
        # The generator's checks named its own arguments ("seed must be ...").
        ({"seed": -1}, "--data-seed must be an integer >= 0, got -1"),
        ({"num_messages": 10**12}, "--num-messages must be at most 1_000_000_000 for synthetic"),
    ],
)
def test_graph_source_validates(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        GraphSource(**kwargs)  # type: ignore[arg-type]


def test_load_split_real_hcrl_sa(shared_data: Path, tmp_path: Path) -> None:
    source = GraphSource(data_dir=shared_data, dataset="hcrl_sa", cache_dir=tmp_path / "c")
    loaded = load_split(source, "train")
    assert 6200 <= loaded.graphs.num_graphs <= 6350  # the repeated attack-free captures once
    assert 0 < loaded.graphs.y.sum() < loaded.graphs.num_graphs
    assert loaded.graphs.x.shape[1] == 11


def test_load_split_synthetic_default_is_deterministic_and_cached(tmp_path: Path) -> None:
    source = GraphSource(num_messages=30_000, cache_dir=tmp_path / "c")
    train, test = load_split(source, "train"), load_split(source, "test")
    assert not train.cache_hit and train.graphs.num_graphs == 225
    assert 0 < train.graphs.y.sum() < train.graphs.num_graphs
    assert test.graphs.num_graphs == 75 and test.cache_hit  # built with train, in one go
    np.testing.assert_array_equal(test.vocab.ids, train.vocab.ids)
    fresh = load_split(GraphSource(num_messages=30_000, use_cache=False), "train")
    np.testing.assert_array_equal(fresh.graphs.x, train.graphs.x)
    other = load_split(GraphSource(num_messages=30_000, seed=1, use_cache=False), "train")
    assert not np.array_equal(other.graphs.y, train.graphs.y)


def test_absolute_source_loads_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ray worker runs in a folder of its own: a relative --data-dir must be resolved first.
    make_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    relative = GraphSource(data_dir=Path("data"), cache_dir=Path("c"))
    source = relative.absolute()
    assert source.data_dir == tmp_path / "data" and source.cache_dir == tmp_path / "c"
    assert source.absolute() == source and GraphSource().absolute() == GraphSource()
    elsewhere = tmp_path / "worker"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_split(source, "train").graphs.num_graphs == 20
    with pytest.raises(UserError, match="--data-dir data: no such directory"):
        load_split(relative, "train")
