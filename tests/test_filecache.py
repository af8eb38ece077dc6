"""The one staleness rule for values derived from files."""

from __future__ import annotations

import os
from pathlib import Path

from store.atomic import atomic_write_bytes
from store.filecache import FileCache


def test_a_value_is_rebuilt_only_after_its_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    atomic_write_bytes(path, b"one")
    cache: FileCache[bytes] = FileCache()
    builds: list[bytes] = []

    def build() -> bytes:
        builds.append(path.read_bytes())
        return builds[-1]

    assert cache.get("book", path, build) == b"one"
    assert cache.get("book", path, build) == b"one"
    assert len(builds) == 1
    # Same size, and the same modification time forced back: the new inode still tells.
    stat = path.stat()
    atomic_write_bytes(path, b"two")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cache.get("book", path, build) == b"two"
    cache.forget("book")
    assert cache.get("book", path, build) == b"two"
    assert len(builds) == 3
