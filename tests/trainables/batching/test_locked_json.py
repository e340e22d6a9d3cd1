from __future__ import annotations

import doctest
import errno
import fcntl
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainables.batching import locked_json
from trainables.batching.locked_json import LockedJsonFile, canonical_key, file_lock
from trainables.errors import UserError


@dataclass(frozen=True)
class _Key:
    name: str
    size: int


def test_locked_json_file_reads_a_missing_file_as_no_entries(tmp_path: Path) -> None:
    assert LockedJsonFile(tmp_path / "none.json", format_name="demo").read() == {}


def test_locked_json_file_update_writes_a_complete_file(tmp_path: Path) -> None:
    store = LockedJsonFile(tmp_path / "sub" / "store.json", format_name="demo")
    assert store.update(lambda entries: entries.setdefault("a", 1)) == 1
    data = json.loads(store.path.read_text())
    assert data == {"format": "demo", "version": 1, "entries": {"a": 1}}
    assert store.lock_path.exists()
    # The temporary file was renamed over the data file: nothing else is left behind.
    assert {path.name for path in store.path.parent.iterdir()} == {"store.json", "store.json.lock"}


def test_locked_json_file_update_keeps_the_keys_beside_the_entries(tmp_path: Path) -> None:
    # A note someone added to the file, or a field a newer writer keeps there, was dropped on
    # the next update.
    path = tmp_path / "store.json"
    path.write_text(
        json.dumps({"format": "demo", "version": 1, "entries": {"a": 1}, "note": "cluster A"})
    )
    LockedJsonFile(path, format_name="demo").update(lambda entries: entries.update(b=2))
    data = json.loads(path.read_text())
    assert data == {
        "format": "demo",
        "version": 1,
        "entries": {"a": 1, "b": 2},
        "note": "cluster A",
    }


def test_locked_json_file_update_writes_nothing_when_mutate_raises(tmp_path: Path) -> None:
    store = LockedJsonFile(tmp_path / "store.json", format_name="demo")
    store.update(lambda entries: entries.update(a=1))

    def fail(entries: dict[str, object]) -> None:
        entries["a"] = 2
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        store.update(fail)
    assert store.read() == {"a": 1}
    assert {path.name for path in tmp_path.iterdir()} == {"store.json", "store.json.lock"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", r"store.json: not valid JSON \(.*\); move it away or delete it"),
        ('{"format": "other", "version": 1, "entries": {}}', "store.json: not a demo file"),
        ('{"format": "demo", "version": 1, "entries": []}', "store.json: not a demo file"),
        ("[]", "store.json: not a demo file"),
        ('{"format": "demo", "version": 9, "entries": {}}', "demo file version 9, this code"),
    ],
)
def test_locked_json_file_rejects_files_it_did_not_write(
    tmp_path: Path, text: str, match: str
) -> None:
    path = tmp_path / "store.json"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        LockedJsonFile(path, format_name="demo").read()


def test_locked_json_file_names_a_directory_or_binary_file(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(UserError, match=r"dir.json: a directory, not a demo file"):
        LockedJsonFile(tmp_path / "dir.json", format_name="demo").read()
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match=r"binary.json: not a demo file \(not UTF-8 text\)"):
        LockedJsonFile(binary, format_name="demo").update(lambda entries: None)
    assert binary.read_bytes() == b"\xff\xfe\x00"


def test_file_lock_excludes_other_open_files(tmp_path: Path) -> None:
    lock_path = tmp_path / "x.lock"
    # flock belongs to the open file, so a second open conflicts as another process would.
    with file_lock(lock_path), lock_path.open("a") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    with lock_path.open("a") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_mount_without_locks_updates_unlocked_and_warns_once_per_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Lustre mounted `noflock` (ENOSYS) or NFS `nolock` (ENOLCK): a trial's frontier memo and
    # factor store crashed it with the OSError.
    real_flock = fcntl.flock

    def no_locks(fd: int, operation: int) -> None:
        if operation & fcntl.LOCK_EX:
            raise OSError(errno.ENOSYS, "Function not implemented")
        real_flock(fd, operation)

    locked_json._warn_unlocked.cache_clear()
    monkeypatch.setattr(fcntl, "flock", no_locks)
    store = LockedJsonFile(tmp_path / "shared" / "counts.json", format_name="demo")
    with caplog.at_level(logging.WARNING, logger=locked_json.__name__):
        store.update(lambda entries: entries.setdefault("runs", 0))
        store.update(lambda entries: entries.__setitem__("runs", entries["runs"] + 1))
        with file_lock(tmp_path / "shared" / "other.lock"):
            pass
    assert store.read() == {"runs": 1}
    (record,) = caplog.records
    assert record.getMessage().startswith(f"{tmp_path / 'shared'} cannot be locked")
    assert "Function not implemented" in record.getMessage()


def test_canonical_key_is_stable_json_of_the_fields() -> None:
    assert canonical_key(_Key("a", 1)) == '{"name": "a", "size": 1}'
    assert canonical_key(_Key("a", 1)) == canonical_key(_Key(size=1, name="a"))


@pytest.mark.parametrize("key", [{"name": "a"}, _Key])
def test_canonical_key_rejects_what_is_not_a_dataclass_instance(key: object) -> None:
    with pytest.raises(TypeError, match="key must be a dataclass instance"):
        canonical_key(key)


def test_locked_json_docstring_examples_run() -> None:
    assert doctest.testmod(locked_json).failed == 0
