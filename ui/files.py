"""Files the browser sends (uploads) and files it receives (exports)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from store import StoreError

MAX_UPLOAD = 64 * 1024 * 1024


def read_upload(upload: str | None, limit: int = MAX_UPLOAD) -> bytes:
    """The bytes of an uploaded file (gradio hands over a temp path).

    Raises:
        StoreError: nothing was uploaded, or the file is over `limit`.
    """
    if not upload:
        raise StoreError("No file was uploaded.")
    path = Path(upload)
    if path.stat().st_size > limit:
        raise StoreError(f"That file is too big (over {limit // 2**20} MB).")
    return path.read_bytes()


def download_file(title: str, extension: str, data: bytes) -> Path:
    """Write `data` to a fresh temp folder under a file name made safe from `title`.

    The title is user text: only letters, digits, dots, dashes and underscores survive,
    so it can never name a path outside that folder.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", title).strip("._-")[:60] or "hearth"
    folder = Path(tempfile.mkdtemp(prefix="hearth-export-"))
    path = folder / f"{stem}.{extension}"
    path.write_bytes(data)
    return path
