"""A JSON object in a file that concurrent processes read and update without losing writes.

Updates hold an exclusive `fcntl.flock` on a lock file beside the data file for the whole
read-modify-write, and replace the data file atomically (temporary file, fsync, `os.replace`), so
a reader that takes no lock still sees either the old or the new complete file. flock locks
belong to an open file, so they exclude threads of one process as well as other processes.
Linux/macOS only. On a shared file system flock works across nodes where the mount supports it
(NFSv4; Lustre mounted with `-o flock`). Where it fails (`noflock` Lustre, `nolock` NFS), updates
go on unlocked, with one warning per folder: every file is still replaced whole, but two
processes that update the same file at the same moment may lose one of the two updates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from trainables.errors import UserError

__all__ = ["LockedJsonFile", "canonical_key", "file_lock"]

T = TypeVar("T")

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if missing) for the duration of the context.

    Args:
        path: The lock file; its folder must exist.
    """
    with path.open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except OSError as err:  # ENOLCK, ENOSYS, EOPNOTSUPP: a mount without locks
            _warn_unlocked(path.parent, str(err.strerror or err))
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@functools.cache
def _warn_unlocked(folder: Path, reason: str) -> None:
    """One warning per folder and process that its lock files cannot be locked."""
    logger.warning(
        "%s cannot be locked (%s): its files are updated unlocked; a concurrent update"
        " may be lost (mount the file system with locks, e.g. Lustre's -o flock)",
        folder,
        reason,
    )


def canonical_key(key: object) -> str:
    """A dataclass key as a stable string: its fields as JSON with sorted keys.

    Args:
        key: A dataclass instance whose fields are JSON values.

    Returns:
        For example `'{"dataset": "hcrl", "device_type": "cpu"}'`.

    Raises:
        TypeError: `key` is not a dataclass instance.
    """
    if not dataclasses.is_dataclass(key) or isinstance(key, type):
        raise TypeError(f"key must be a dataclass instance, got {type(key).__name__}")
    return json.dumps(dataclasses.asdict(key), sort_keys=True)


class LockedJsonFile:
    """A JSON object stored in `path`, updated under a lock and replaced atomically.

    The file holds `{"format": <format_name>, "version": 1, "entries": {...}}`; callers read and
    change `entries`. A missing file reads as no entries.

    Args:
        path: The data file; its folder is created on the first update. The lock file is
            `path` + `.lock`.
        format_name: What the file holds, written into it and checked on reading, so that one
            kind of file is never mistaken for another.

    Example:
        >>> import tempfile
        >>> store = LockedJsonFile(Path(tempfile.mkdtemp()) / "counts.json", format_name="demo")
        >>> store.update(lambda entries: entries.setdefault("runs", 0))
        0
        >>> store.update(lambda entries: entries.__setitem__("runs", entries["runs"] + 1))
        >>> store.read()
        {'runs': 1}
    """

    _VERSION = 1

    def __init__(self, path: Path, *, format_name: str) -> None:
        self.path = Path(path)
        self.format_name = format_name
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def read(self) -> dict[str, Any]:
        """The entries as they are now (no lock: the file is only ever replaced whole).

        Raises:
            UserError: The file is not one of these files (names the file and how to fix it).
        """
        entries: dict[str, Any] = self._read_document().get("entries", {})
        return entries

    def _read_document(self) -> dict[str, Any]:
        """The whole file's object, `{}` for a missing file."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except IsADirectoryError:
            raise UserError(f"{self.path}: a directory, not a {self.format_name} file") from None
        except UnicodeDecodeError:
            raise UserError(
                f"{self.path}: not a {self.format_name} file (not UTF-8 text); move it away or"
                f" delete it to start a new {self.format_name} file"
            ) from None
        except OSError as exc:
            raise UserError(f"{self.path}: cannot read it ({exc.strerror})") from None
        return self._parse(text)

    def update(self, mutate: Callable[[dict[str, Any]], T]) -> T:
        """Read the entries, let `mutate` change them in place, and write them back, under lock.

        Args:
            mutate: Changes the entries dict in place; what it returns is returned. If it raises,
                nothing is written.

        Returns:
            What `mutate` returned.

        Raises:
            UserError: The file is not one of these files.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.lock_path):
            document = self._read_document()
            entries = document.setdefault("entries", {})
            result = mutate(entries)
            # Keys beside the entries (a note someone added, a newer writer's field) are kept.
            self._write({**document, "format": self.format_name, "version": self._VERSION})
        return result

    def _parse(self, text: str) -> dict[str, Any]:
        """The file's object, checked to be one of these files."""
        how_to_fix = f"move it away or delete it to start a new {self.format_name} file"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{self.path}: not valid JSON ({exc.msg}, line {exc.lineno}); {how_to_fix}"
            ) from None
        if (
            not isinstance(data, dict)
            or data.get("format") != self.format_name
            or not isinstance(data.get("entries"), dict)
        ):
            raise UserError(f"{self.path}: not a {self.format_name} file; {how_to_fix}")
        if data.get("version") != self._VERSION:
            raise UserError(
                f"{self.path}: {self.format_name} file version {data.get('version')!r}, this"
                f" code reads version {self._VERSION}; {how_to_fix}"
            )
        return data

    def _write(self, data: dict[str, Any]) -> None:
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
