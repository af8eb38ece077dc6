"""Pictures attached to chat messages, kept in the chat's own folder.

    <session id>/images/<sha256 of the stored bytes, 32 hex digits>.png

A picture comes from the user's browser, so it is untrusted: Pillow decodes it under
a pixel limit (a decompression bomb is refused, not expanded), and what is stored is a
fresh PNG of the pixels only, at most `MAX_SIDE` pixels on a side: no metadata, no
second image hidden after the first, nothing a viewer could run. The name is the hash
of those bytes, so the same picture twice is stored once, and a name read back from a
message is checked against that pattern before it becomes a path. Deleting the chat
deletes its pictures with its folder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import threading
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from store.atomic import atomic_write_bytes
from store.errors import InvalidInputError, NotFoundError, StoreCorruptError, StoreError
from store.records import check_id

IMAGES_DIR = "images"
MAX_SIDE = 1536  # vision models look at a few hundred pixels; more only costs memory
MAX_PIXELS = 50_000_000  # what Pillow may decode at all; larger is refused unread
MAX_BYTES = 30 * 2**20
THUMB_SIDE = 320
THUMBNAILS_KEPT = 64
_NAME = re.compile(r"[0-9a-f]{32}\.png")


class ChatImages:
    """Store and read the pictures of the chats under `root` (the sessions folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._thumbnails: dict[tuple[str, str], str] = {}  # names are hashes: a name's picture never changes
        self._lock = threading.Lock()

    def add(self, session_id: str, data: bytes) -> str:
        """Store a picture for the chat and return its name.

        Raises:
            InvalidInputError: the bytes are not a picture Pillow can read, or too large.
            StoreError: it could not be written (a full disk).
        """
        png = normalized_png(data)
        name = hashlib.sha256(png).hexdigest()[:32] + ".png"
        path = self._path(session_id, name)
        if not path.is_file():
            try:
                path.parent.mkdir(exist_ok=True)
                atomic_write_bytes(path, png)
            except OSError as exc:
                raise StoreError(f"Could not save the picture: {exc.strerror or exc}.") from exc
        return name

    def exists(self, session_id: str, name: str) -> bool:
        try:
            return self._path(session_id, name).is_file()
        except NotFoundError:
            return False

    def copy(self, source_id: str, target_id: str, name: str) -> None:
        """Give another chat (a branch) the same picture. Raises NotFoundError, StoreError."""
        data = self.read(source_id, name)
        target = self._path(target_id, name)
        try:
            target.parent.mkdir(exist_ok=True)
            atomic_write_bytes(target, data)
        except OSError as exc:
            raise StoreError(f"Could not copy the picture: {exc.strerror or exc}.") from exc

    def read(self, session_id: str, name: str) -> bytes:
        """A stored picture's PNG bytes. Raises NotFoundError for an unknown or odd name."""
        try:
            return self._path(session_id, name).read_bytes()
        except OSError as exc:
            raise NotFoundError("That picture is no longer in the chat.") from exc

    def thumbnail_uri(self, session_id: str, name: str) -> str:
        """A small copy of the picture as a `data:` URI, for the chat to show without a fetch."""
        key = (session_id, name)
        with self._lock:
            if key in self._thumbnails:
                return self._thumbnails[key]
        uri = "data:image/png;base64," + base64.b64encode(_thumbnail(self.read(session_id, name))).decode()
        with self._lock:
            if len(self._thumbnails) >= THUMBNAILS_KEPT:
                self._thumbnails.pop(next(iter(self._thumbnails)))
            self._thumbnails[key] = uri
        return uri

    def _path(self, session_id: str, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise NotFoundError("That picture is no longer in the chat.")
        return self.root / check_id(session_id) / IMAGES_DIR / name


def _thumbnail(png: bytes) -> bytes:
    try:
        with Image.open(io.BytesIO(png)) as image:
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
            out = io.BytesIO()
            image.save(out, format="PNG")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise StoreCorruptError("A picture in this chat is damaged.") from exc
    return out.getvalue()


def normalized_png(data: bytes) -> bytes:
    """The picture's pixels as a fresh PNG, at most MAX_SIDE on a side.

    Raises:
        InvalidInputError: not a picture Pillow reads, or too large to accept.
    """
    if len(data) > MAX_BYTES:
        raise InvalidInputError(f"The picture is over {MAX_BYTES // 2**20} MB; attach a smaller one.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise InvalidInputError("The picture has too many pixels; attach a smaller one.")
                image.load()
                pixels = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except InvalidInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInputError("The picture has too many pixels; attach a smaller one.") from exc
    except (UnidentifiedImageError, OSError, ValueError, Warning) as exc:
        raise InvalidInputError("That file is not a picture Hearth can read (PNG, JPEG, WebP, GIF).") from exc
    pixels.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    pixels.save(out, format="PNG")
    return out.getvalue()
