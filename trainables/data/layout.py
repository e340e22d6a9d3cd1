"""The can-train-and-test layout: `<root>/<dataset>/<split>/<capture>.csv[.gz]|.parquet`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainables.data.reader import CAPTURE_SUFFIXES, is_capture_file
from trainables.errors import UserError

__all__ = ["DatasetLayout", "is_test_split", "is_train_split", "resolve_dataset"]


def is_train_split(name: str) -> bool:
    """`train_01_attack_free`, `train_02_with_attacks`, ...: training splits."""
    return name.lower().startswith("train")


def is_test_split(name: str) -> bool:
    """`test_01_known_vehicle_known_attack`, ...: test splits."""
    return name.lower().startswith("test")


@dataclass(frozen=True)
class DatasetLayout:
    """One dataset folder: its split folders and their capture files, sorted by name.

    A split folder without captures is kept (with no files): reading it is an error that names
    it, where it used to be skipped (`--split train` read the other `train_*` folders only).

    Args:
        root: The dataset folder (e.g. `.../can-train-and-test/hcrl_sa`).
        splits: Split name -> capture files.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "set_01" / "train_01_attack_free"
        >>> d.mkdir(parents=True); _ = (d / "a.csv").write_text("x")
        >>> DatasetLayout.scan(d.parent).train_splits
        ('train_01_attack_free',)
    """

    root: Path
    splits: dict[str, tuple[Path, ...]]

    @classmethod
    def scan(cls, root: Path) -> DatasetLayout:
        splits = {
            d.name: tuple(sorted(f for f in d.iterdir() if f.is_file() and is_capture_file(f)))
            for d in sorted(root.iterdir())
            if d.is_dir() and (is_train_split(d.name) or is_test_split(d.name))
        }
        return cls(root=root, splits=splits)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def train_splits(self) -> tuple[str, ...]:
        return tuple(s for s in self.splits if is_train_split(s))

    @property
    def test_splits(self) -> tuple[str, ...]:
        return tuple(s for s in self.splits if is_test_split(s))

    def files(self, split: str) -> tuple[Path, ...]:
        """Capture files of `split`: a folder name, or `train` / `test` for all such folders."""
        if split in ("train", "test"):
            names = self.train_splits if split == "train" else self.test_splits
            if not names:
                raise UserError(
                    f"{self.root}: no {split}_* split folder "
                    f"(found: {', '.join(self.splits) or 'none'})"
                )
            return tuple(f for name in names for f in self._split_files(name))
        if split not in self.splits:
            raise UserError(
                f"--split {split}: no such split in {self.root} "
                f"(choose train, test, or one of: {', '.join(self.splits)})"
            )
        return self._split_files(split)

    def _split_files(self, name: str) -> tuple[Path, ...]:
        if not self.splits[name]:
            folder = self.root / name
            contents = "is empty" if not any(folder.iterdir()) else "holds no capture file"
            raise UserError(
                f"split folder {folder} {contents} (captures are {', '.join(CAPTURE_SUFFIXES)});"
                " put its captures there, or remove the folder"
            )
        return self.splits[name]


def resolve_dataset(
    data_dir: str | Path, dataset: str | None, *, option: str = "--dataset"
) -> DatasetLayout:
    """Find the dataset folder under `data_dir` (or `data_dir` itself if it holds splits).

    Args:
        data_dir: The root of the datasets (`--data-dir`), or a dataset folder itself.
        dataset: The dataset folder's name; None when there is only one.
        option: The option that named `dataset`, for errors (default `--dataset`).

    Raises:
        UserError: The folder does not exist, the dataset is not there, or several datasets
            are there and none was named.
    """
    root = Path(data_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(
            f"--data-dir {data_dir}: a file, not a folder; give the folder of the datasets"
            " (<data-dir>/<dataset>/<split>/<capture>.csv)"
        )
    if not root.is_dir():
        raise UserError(f"--data-dir {data_dir}: no such directory")
    if not any(root.iterdir()):
        raise UserError(
            f"--data-dir {data_dir}: the folder is empty; expected <dataset>/<split>/<capture>.csv"
        )
    own = DatasetLayout.scan(root)
    if dataset is None and own.splits:
        return own
    candidates = {d.name: d for d in sorted(root.iterdir()) if d.is_dir()}
    datasets = {n: DatasetLayout.scan(d) for n, d in candidates.items()}
    datasets = {n: layout for n, layout in datasets.items() if layout.splits}
    if dataset is None:
        if len(datasets) == 1:
            return next(iter(datasets.values()))
        raise UserError(
            f"--data-dir {data_dir} holds {len(datasets)} datasets; choose one with --dataset "
            f"({', '.join(datasets) or 'none found: expected <dataset>/<split>/<capture>.csv'})"
        )
    if dataset in candidates and dataset not in datasets:
        folder = candidates[dataset]
        contents = "is empty" if not any(folder.iterdir()) else "holds no split folder"
        raise UserError(
            f"{option} {dataset}: {folder} {contents}; a dataset holds train_* and test_* split"
            " folders of captures (<dataset>/<split>/<capture>.csv)"
        )
    if dataset not in datasets:
        raise UserError(
            f"{option} {dataset}: not found in {data_dir} "
            f"(available: {', '.join(datasets) or 'none: expected <dataset>/<split>/<file>.csv'})"
        )
    return datasets[dataset]
