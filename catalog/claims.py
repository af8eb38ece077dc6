"""Output paths claimed by work under way in this process: downloads and conversions.

Two jobs writing one file would interleave their bytes, and a job picking a free name
must not pick one another job is about to write. So each job claims its output paths
here before writing and releases them when it ends, however it ends. Paths are
compared resolved, so two spellings of one file are one claim.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["claim_first_free", "claimed", "release"]

_lock = threading.Lock()
_claimed: set[Path] = set()


@contextmanager
def claimed(paths: Iterable[Path], *, busy: Callable[[Path], Exception]) -> Iterator[None]:
    """Hold every one of `paths` for the `with` block, or none of them.

    Raises:
        The exception `busy(path)` builds, for the first path (in sorted order) that
        another job holds already.
    """
    keys = {p.resolve() for p in paths}
    with _lock:
        if taken := sorted(keys & _claimed):
            raise busy(taken[0])
        _claimed.update(keys)
    try:
        yield
    finally:
        with _lock:
            _claimed.difference_update(keys)


def claim_first_free(candidates: Iterable[Path]) -> Path | None:
    """Claim the first candidate that no job holds and no file occupies; None if all are taken.

    The caller releases the returned path with `release` once its work has ended.
    """
    with _lock:
        for candidate in candidates:
            key = candidate.resolve()
            if key not in _claimed and not candidate.exists():
                _claimed.add(key)
                return candidate
    return None


def release(path: Path) -> None:
    """End a claim made by `claim_first_free`."""
    with _lock:
        _claimed.discard(path.resolve())
