"""Files the browser sends (uploads) and files it receives (exports)."""

from __future__ import annotations

import re
import tempfile
import unicodedata
from pathlib import Path

from catalog.naming import windows_reserved
from store.errors import InvalidInputError, StoreError

MAX_UPLOAD = 64 * 1024 * 1024
MAX_STEM_CHARS = 60  # at most 240 bytes in UTF-8, so the whole name stays under the usual 255


def read_upload(upload: str | None, limit: int = MAX_UPLOAD) -> bytes:
    """The bytes of an uploaded file (gradio hands over a temp path).

    Raises:
        StoreError: nothing was uploaded, or the file is over `limit`.
    """
    if not upload:
        raise InvalidInputError("No file was uploaded.")
    path = Path(upload)
    if path.stat().st_size > limit:
        raise InvalidInputError(f"That file is too big (over {limit // 2**20} MB).")
    return path.read_bytes()


def download_file(title: str, extension: str, data: bytes) -> Path:
    """Write `data` to a fresh temp folder under a file name made safe from `title`.

    The title is user text (a card name, a chat title): see `safe_stem`. The result is
    always a new file directly inside that folder.
    """
    folder = Path(tempfile.mkdtemp(prefix="hearth-export-"))
    path = folder / f"{safe_stem(title)}.{_safe_extension(extension)}"
    if path.parent != folder:  # cannot happen with the names above; a last guard, not a rule
        raise StoreError("Could not name the exported file.")
    path.write_bytes(data)
    return path


def safe_stem(title: str) -> str:
    """A file name stem from user text that is valid everywhere and can never be a path.

    Only letters and digits (any script), dots, dashes and underscores survive; runs of
    anything else become one "_". Dots, dashes and underscores are trimmed from both
    ends and runs of dots become one (no hidden files, no "..", no trailing dot Windows
    refuses), the length is capped, and a Windows device name (CON, NUL, COM1, COM¹,
    ...; see `catalog.naming.windows_reserved`) before the first dot gets a "_" after it.
    """
    stem = re.sub(r"(?:[^\w.-]|_)+", "_", unicodedata.normalize("NFC", title))
    stem = re.sub(r"\.{2,}", ".", stem).strip("._-")[:MAX_STEM_CHARS].rstrip("._-") or "hearth"
    head, dot, rest = stem.partition(".")
    return f"{head}_{dot}{rest}" if windows_reserved(head) else stem


def _safe_extension(extension: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", extension)[:10].lower() or "bin"
