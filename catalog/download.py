"""Downloading GGUF models from the Hub: progress, cancel, resume across calls, sha256.

huggingface_hub 2.x restarts an interrupted download from zero on the next call (it
deletes its own temp file), which hurts on multi-gigabyte models. So this module
keeps `<target>.part` plus a small `<target>.part.json` sidecar naming the file
version, and a later call asks only for the missing bytes with a `Range` request.
Bytes are hashed as they arrive (after re-hashing what is already on disk), and a
file is moved into place only once its sha256 matches the one the Hub published:
a corrupt or truncated model never appears under its final name.

All HTTP goes through `HubClient`; this module never imports huggingface_hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.claims import claimed
from catalog.errors import ChecksumError, DownloadCancelledError, DownloadError, NotEnoughSpaceError
from catalog.hub import FileVersion, HubClient
from catalog.naming import GgufChoice, safe_relative_path
from store.atomic import fsync_dir

__all__ = ["DownloadProgress", "Downloader", "ProgressCallback"]

SPACE_MARGIN = 64 * 1000 * 1000  # never fill the disk to the last byte
_EMIT_INTERVAL = 0.1  # seconds between progress callbacks (about ten a second)
_RATE_SMOOTHING = 0.3  # weight of the newest rate sample in the moving average
_HASH_BLOCK = 1 << 20
_SIDECAR_SCHEMA = 1
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")  # fullmatch: `$` would allow a final newline


@dataclass(frozen=True)
class DownloadProgress:
    """A snapshot of a download, for a progress bar.

    `bytes_done`/`bytes_total` cover every part of the model, counting bytes that
    were already on disk from an earlier attempt; `rate` (bytes per second) is a
    smoothed average over bytes received by this call only.
    """

    bytes_done: int
    bytes_total: int
    rate: float
    file_name: str
    part_index: int
    part_count: int

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0


ProgressCallback = Callable[[DownloadProgress], None]
Clock = Callable[[], float]


class _Verifier:
    """Incremental checksum of a file: sha256 for LFS files, git's blob sha1 for small ones."""

    def __init__(self, kind: str, expected: str, size: int):
        self.kind, self.expected, self.size = kind, expected, size
        self.reset()

    def reset(self) -> None:
        if self.kind == "sha256":
            self._hash = hashlib.sha256()
        else:  # git hashes a "blob <size>\0" header before the content
            self._hash = hashlib.sha1(f"blob {self.size}\0".encode(), usedforsecurity=False)

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def matches(self) -> bool:
        return self._hash.hexdigest() == self.expected


@dataclass(frozen=True)
class _Item:
    """One file to fetch, with the version the Hub says it has now."""

    repo_id: str
    filename: str
    target: Path
    version: FileVersion
    size: int
    sha256: str | None

    @property
    def part(self) -> Path:
        return self.target.with_name(self.target.name + ".part")

    @property
    def sidecar(self) -> Path:
        return self.target.with_name(self.target.name + ".part.json")

    def record(self) -> dict[str, Any]:
        """The sidecar's content; every key but `url` must match for a resume."""
        return {
            "schema": _SIDECAR_SCHEMA,
            "repo_id": self.repo_id,
            "filename": self.filename,
            "size": self.size,
            "etag": self.version.etag,
            "sha256": self.sha256,
            "url": self.version.url,
        }

    def is_done(self) -> bool:
        return self.target.is_file() and self.target.stat().st_size == self.size

    def resumable_bytes(self) -> int:
        """Bytes already on disk that belong to this very version of the file."""
        if self.is_done():
            return self.size
        if not self.part.is_file() or not _same_version(_read_json(self.sidecar), self.record()):
            return 0
        have = self.part.stat().st_size
        return have if have <= self.size else 0

    def verifier(self) -> _Verifier | None:
        if self.sha256:
            return _Verifier("sha256", self.sha256, self.size)
        if self.version.etag and _GIT_SHA1.fullmatch(self.version.etag):
            return _Verifier("git-sha1", self.version.etag, self.size)
        return None  # nothing published to check against; the size check still applies


class _Tracker:
    """Turns byte counts into at most ~10 progress callbacks a second."""

    def __init__(self, callback: ProgressCallback | None, total: int, done: int, count: int, clock: Clock):
        self.callback, self.total, self.done, self.count, self.clock = callback, total, done, count, clock
        self.index, self.name, self.rate = 0, "", 0.0
        self._received = 0
        self._last_time = clock()
        self._last_received = 0

    def start_part(self, index: int, name: str) -> None:
        self.index, self.name = index, name
        self._emit(force=True)

    def add(self, n_bytes: int) -> None:
        self.done += n_bytes
        self._received += n_bytes
        self._emit(force=False)

    def rewind(self, n_bytes: int) -> None:
        """Bytes counted as present turned out unusable (the server ignored a resume)."""
        self.done -= n_bytes

    def finish(self) -> None:
        self._emit(force=True)

    def _emit(self, *, force: bool) -> None:
        now = self.clock()
        elapsed = now - self._last_time
        if self.callback is None or (not force and elapsed < _EMIT_INTERVAL):
            return
        if elapsed > 0 and self._received > self._last_received:
            sample = (self._received - self._last_received) / elapsed
            self.rate = sample if self.rate == 0 else self.rate + _RATE_SMOOTHING * (sample - self.rate)
            self._last_time, self._last_received = now, self._received
        self.callback(DownloadProgress(self.done, self.total, self.rate, self.name, self.index, self.count))


class Downloader:
    """Fetches a repo's GGUF (every part of a split one) into `<models_dir>/<owner>/<repo>/`.

    Args:
        hub: the client every request goes through.
        models_dir: the models folder; created when the first download starts.
        clock: seconds, for the transfer rate; tests pass a fake.
    """

    def __init__(self, hub: HubClient, models_dir: Path, *, clock: Clock = time.monotonic):
        self.hub = hub
        self.models_dir = Path(models_dir)
        self.clock = clock

    def target_path(self, repo_id: str, filename: str) -> Path:
        """Where a repo file is stored, after checking the names cannot escape the folder.

        Raises:
            UnsafeNameError: the repo id or file name is not a plain, safe name.
        """
        return self.models_dir.joinpath(*safe_relative_path(repo_id, filename).parts)

    def download(
        self,
        repo_id: str,
        choice: GgufChoice | str,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Path:
        """Download a model (a choice from `group_gguf_files`, or one file name) and verify it.

        Parts already complete are kept; a part left unfinished by an earlier call
        resumes where it stopped if the Hub still has the same version of the file.

        Returns:
            The path of the model file (the first part of a split model).

        Raises:
            UnsafeNameError: a name could escape the models folder (before any request).
            OfflineError, HubError: the Hub cannot be reached or refused.
            NotEnoughSpaceError: the disk cannot hold what is still missing.
            DownloadCancelledError: `cancel` was set; what arrived is kept for resume.
            ChecksumError: the bytes do not match the Hub's sha256; they are deleted.
            DownloadError: the connection broke or the file was the wrong size.
        """
        if isinstance(choice, GgufChoice):
            with_projector = (*choice.parts, *([choice.projector] if choice.projector else []))
            wanted = [(part.path, part.sha256) for part in with_projector]
        else:
            wanted = [(choice, None)]
        targets = [self.target_path(repo_id, path) for path, _ in wanted]
        cancel = cancel or threading.Event()
        _raise_if_cancelled(cancel, 0)
        # Two downloads writing one .part would interleave their bytes; one at a time per file.
        with claimed(targets, busy=_already_downloading):
            items = [self._plan(repo_id, *pair, t) for pair, t in zip(wanted, targets, strict=True)]
            self._check_space(items)
            present = sum(item.resumable_bytes() for item in items)
            tracker = _Tracker(progress, sum(i.size for i in items), present, len(items), self.clock)
            for index, item in enumerate(items, start=1):
                tracker.start_part(index, item.filename)
                if not item.is_done():
                    self._fetch(item, tracker, cancel)
            tracker.finish()
        return targets[0]

    def _plan(self, repo_id: str, filename: str, listed_sha: str | None, target: Path) -> _Item:
        version = self.hub.file_version(repo_id, filename)
        if version.size is None:
            raise DownloadError(f"Hugging Face did not say how big {filename} is; it cannot be downloaded.")
        # The HEAD answer describes the version we will fetch; the listing may be older.
        sha256 = version.sha256 or listed_sha
        return _Item(repo_id, filename, target, version, version.size, sha256)

    def _check_space(self, items: list[_Item]) -> None:
        missing = sum(item.size - item.resumable_bytes() for item in items)
        if missing <= 0:
            return
        folder = _existing_ancestor(self.models_dir)
        free = shutil.disk_usage(folder).free
        if missing + SPACE_MARGIN > free:
            raise NotEnoughSpaceError(
                f"Not enough free disk space: this download needs {human_size(missing)} more "
                f"(plus {human_size(SPACE_MARGIN)} to spare), but only {human_size(free)} is free "
                f"in {folder}. Free some space or choose a smaller quantisation."
            )

    def _fetch(self, item: _Item, tracker: _Tracker, cancel: threading.Event) -> None:
        item.target.parent.mkdir(parents=True, exist_ok=True)
        start = item.resumable_bytes()
        if start == 0:
            item.part.unlink(missing_ok=True)
            item.sidecar.write_text(json.dumps(item.record(), indent=1))
        verifier = item.verifier()
        _hash_existing(item.part, start, verifier, cancel)
        if start < item.size:
            self._receive(item, start, verifier, tracker, cancel)
        _finish(item, verifier)

    def _receive(
        self, item: _Item, start: int, verifier: _Verifier | None, tracker: _Tracker, cancel: threading.Event
    ) -> None:
        with self.hub.open_bytes(item.version.url, start) as stream:
            if stream.offset != start:  # the server ignored the Range header: start over
                tracker.rewind(start)
                if verifier is not None:
                    verifier.reset()
            with open(item.part, "r+b" if item.part.exists() else "wb") as out:
                out.seek(stream.offset)
                out.truncate()
                try:
                    for chunk in stream.chunks:
                        out.write(chunk)
                        if verifier is not None:
                            verifier.update(chunk)
                        tracker.add(len(chunk))
                        _raise_if_cancelled(cancel, out.tell())
                except DownloadCancelledError:
                    raise
                except DownloadError as exc:
                    raise DownloadError(
                        f"Downloading {item.filename} stopped after {human_size(out.tell())} of "
                        f"{human_size(item.size)}: {exc} What arrived is kept; download again to resume."
                    ) from exc
                finally:
                    out.flush()
                    os.fsync(out.fileno())


def human_size(n_bytes: float) -> str:
    """Bytes as people read them on Hugging Face: 4.1 GB, 512 MB, 900 kB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n_bytes) >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{int(n_bytes)} bytes"


def _already_downloading(path: Path) -> DownloadError:
    return DownloadError(f"{path.name} is already being downloaded; wait for that download to end.")


def _finish(item: _Item, verifier: _Verifier | None) -> None:
    """Check size and checksum, then move the part into place; bad bytes are deleted."""
    have = item.part.stat().st_size
    if have < item.size:
        raise DownloadError(
            f"Downloading {item.filename} ended early, after {human_size(have)} of {human_size(item.size)}. "
            "What arrived is kept; download again to resume."
        )
    if have > item.size or (verifier is not None and not verifier.matches()):
        item.part.unlink(missing_ok=True)
        item.sidecar.unlink(missing_ok=True)
        if have > item.size:
            raise DownloadError(
                f"Hugging Face sent more bytes than {item.filename} should have; it was deleted. "
                "Try the download again."
            )
        raise ChecksumError(
            f"{item.filename} arrived damaged: its checksum does not match the one Hugging Face "
            "published. The damaged copy was deleted; try the download again."
        )
    os.replace(item.part, item.target)
    fsync_dir(item.target.parent)
    item.sidecar.unlink(missing_ok=True)


def _hash_existing(part: Path, length: int, verifier: _Verifier | None, cancel: threading.Event) -> None:
    """Feed the bytes a previous attempt left on disk to the checksum before appending."""
    if verifier is None or length == 0:
        return
    with open(part, "rb") as existing:
        remaining = length
        while remaining > 0:
            block = existing.read(min(_HASH_BLOCK, remaining))
            if not block:
                break
            verifier.update(block)
            remaining -= len(block)
            _raise_if_cancelled(cancel, length)


def _raise_if_cancelled(cancel: threading.Event, kept: int) -> None:
    if cancel.is_set():
        kept_text = f" The {human_size(kept)} received are kept; download again to resume." if kept else ""
        raise DownloadCancelledError(f"Download cancelled.{kept_text}")


def _same_version(stored: dict[str, Any] | None, current: dict[str, Any]) -> bool:
    if stored is None:
        return False
    return all(stored.get(key) == value for key, value in current.items() if key != "url")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _existing_ancestor(path: Path) -> Path:
    """The nearest folder that exists, so free space is measured before anything is created."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
