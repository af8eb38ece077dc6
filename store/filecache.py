"""Values derived from a file, kept until the file changes.

One staleness rule for every such cache: a file is unchanged while its inode,
modification time (in nanoseconds) and size are. Every write in Hearth replaces a file
through `os.replace`, which gives it a new inode, so even a rewrite within the clock's
resolution and of the same size is seen.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

V = TypeVar("V")
Signature = tuple[int, int, int]


def signature(stat: os.stat_result) -> Signature:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class FileCache(Generic[V]):
    """`get(key, path, build)` returns `build()`'s value, built again only after `path`
    changed. `FileNotFoundError` from `stat` reaches the caller."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Signature, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, path: Path, build: Callable[[], V]) -> V:
        current = signature(path.stat())
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and cached[0] == current:
            return cached[1]
        value = build()
        with self._lock:
            self._entries[key] = (current, value)
        return value

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
