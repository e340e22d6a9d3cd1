from __future__ import annotations

from pathlib import Path

import pytest

from trainables.data.layout import DatasetLayout, resolve_dataset
from trainables.errors import UserError


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")


def test_resolve_dataset_finds_splits_and_files(tmp_path: Path) -> None:
    touch(tmp_path / "set_01" / "train_01_attack_free" / "b.csv.gz")
    touch(tmp_path / "set_01" / "train_01_attack_free" / "a.parquet")
    touch(tmp_path / "set_01" / "train_01_attack_free" / "README.txt")
    touch(tmp_path / "set_01" / "train_02_with_attacks" / "c.csv")
    touch(tmp_path / "set_01" / "test_01_known" / "d.csv")
    layout = resolve_dataset(tmp_path, None)
    assert layout.name == "set_01"
    assert layout.train_splits == ("train_01_attack_free", "train_02_with_attacks")
    assert layout.test_splits == ("test_01_known",)
    assert [f.name for f in layout.files("train")] == ["a.parquet", "b.csv.gz", "c.csv"]
    assert [f.name for f in layout.files("test_01_known")] == ["d.csv"]
    assert resolve_dataset(tmp_path / "set_01", None).root == layout.root


def test_resolve_dataset_errors_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--data-dir .*missing: no such directory"):
        resolve_dataset(tmp_path / "missing", None)
    # A capture given for the folder (it said "no such directory" of a file that is there).
    touch(tmp_path / "one.csv.gz")
    with pytest.raises(UserError, match=r"--data-dir .*one\.csv\.gz: a file, not a folder"):
        resolve_dataset(tmp_path / "one.csv.gz", None)
    (tmp_path / "one.csv.gz").unlink()
    touch(tmp_path / "a" / "train_01" / "x.csv")
    touch(tmp_path / "b" / "train_01" / "x.csv")
    with pytest.raises(UserError, match=r"holds 2 datasets; choose one with --dataset \(a, b\)"):
        resolve_dataset(tmp_path, None)
    with pytest.raises(UserError, match=r"--dataset c: not found .*\(available: a, b\)"):
        resolve_dataset(tmp_path, "c")


def test_dataset_layout_without_test_split(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "train_01" / "x.csv")
    with pytest.raises(UserError, match="no test_\\* split folder"):
        DatasetLayout.scan(tmp_path / "a").files("test")


def test_dataset_layout_keeps_an_empty_split_folder_and_names_it(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "train_01" / "x.csv")
    (tmp_path / "a" / "train_02").mkdir()
    layout = resolve_dataset(tmp_path, None)
    assert layout.train_splits == ("train_01", "train_02")
    assert [f.name for f in layout.files("train_01")] == ["x.csv"]
    for split in ("train", "train_02"):
        with pytest.raises(UserError, match=r"split folder .*a/train_02 is empty"):
            layout.files(split)
