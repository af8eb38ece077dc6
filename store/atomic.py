"""Crash-safe file writes, and a TinyDB storage built on them.

A write goes to a temporary file in the same folder, is flushed and fsynced, then
renamed over the target with `os.replace`, and the folder is fsynced. A crash at any
point leaves either the old file or the new one, never a mix.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from store.errors import StoreCorruptError, StoreError, StoreFullError

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.tmp", re.DOTALL)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically.

    Raises:
        StoreFullError: the disk is full (the old file is untouched).
        StoreError: any other write failure (the old file is untouched).
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreFullError(
                f"The disk holding {path.parent} is full, so the last change was not saved. "
                "Free some space and try again; nothing already saved was lost."
            ) from exc
        raise StoreError(f"Could not save {path.name}: {exc.strerror or exc}.") from exc
    try:
        fsync_dir(path.parent)
    except OSError as exc:
        # The new file is in place and is what every reader gets: the save happened. Only
        # its name may not survive a power cut, which is no reason to tell the user it failed.
        log.warning("Saved %s, but its folder could not be synced to disk: %s", path.name, exc)


def is_temp_name(name: str) -> bool:
    """Whether `name` is one `atomic_write_bytes` gives its temp files: `.<name>.<8 hex>.tmp`."""
    return _TEMP_NAME.fullmatch(name) is not None


def remove_stale_temp_files(root: Path, folders: Iterable[str]) -> int:
    """Delete the temp files a crash left behind: in `root` itself and anywhere under
    each of `folders` (Hearth's own subfolders of it). Returns how many.

    Only names `atomic_write_bytes` makes are touched, so nothing else in the data
    folder is (a download's `.part`, a user's own `.notes.tmp`, the models folder).
    """
    removed = 0
    candidates = [*root.glob(f".*{TEMP_SUFFIX}")]
    for folder in folders:
        candidates += (root / folder).rglob(f".*{TEMP_SUFFIX}")
    for temp in candidates:
        if is_temp_name(temp.name) and temp.is_file():
            temp.unlink(missing_ok=True)
            removed += 1
    return removed


def read_json(path: Path) -> Any:
    """Parse a JSON file written by `atomic_write_bytes`.

    Raises:
        StoreCorruptError: the file exists but is not valid JSON.
    """
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise StoreCorruptError(f"{path} is damaged (not valid JSON at line {exc.lineno}).") from exc


def fsync_dir(directory: Path) -> None:
    """Make the names just created or replaced in `directory` durable, not only their data.

    Skipped where a folder cannot be opened as a file: there is no `os.O_DIRECTORY`
    (Windows), or opening the folder fails.
    """
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicJSONStorage(Storage):
    """A TinyDB storage whose every write is atomic.

    TinyDB writes the whole database on each change, so Hearth keeps each database
    small (one per session page) and the cost of a write independent of total data.
    """

    def __init__(self, path: str | Path, create_dirs: bool = True) -> None:
        self.path = Path(path)
        if create_dirs:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            data = read_json(self.path)
        except FileNotFoundError:
            return None
        if not isinstance(data, dict):
            raise StoreCorruptError(f"{self.path} is damaged (expected a JSON object).")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        atomic_write_bytes(self.path, encoded)

    def close(self) -> None:
        """Nothing stays open between operations."""


@contextmanager
def open_db(path: Path) -> Iterator[TinyDB]:
    """A TinyDB on `path` with atomic writes, closed when the block ends."""
    db = TinyDB(path, storage=AtomicJSONStorage)
    try:
        yield db
    finally:
        db.close()
