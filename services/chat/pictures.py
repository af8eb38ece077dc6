"""Pictures in a chat: the check before one is attached, and what a message holds.

The pictures themselves are stored by `store.chats.images` (decoded and saved afresh as
PNG); a message names its pictures in `meta["images"]`, and the bubble shows them from
`data:` URIs, so the page fetches nothing for them.
"""

from __future__ import annotations

from pathlib import Path

from services.chat.bubbles import IMAGES_KEY
from services.context import AppContext
from store.chats import MAX_PICTURE_BYTES, normalized_png
from store.errors import InvalidInputError, StoreError
from store.records import Message


def require_sight(ctx: AppContext) -> None:
    """Raises InvalidInputError unless the loaded model can see pictures."""
    if not (ctx.models.loaded and ctx.models.backend.sees_images):
        raise InvalidInputError(
            "The loaded model cannot see pictures. Load one with its vision projector "
            "(an mmproj file beside the model) to attach a picture."
        )


def check_picture(ctx: AppContext, path: Path) -> None:
    """Raises InvalidInputError unless the model can see and the file is a picture it may take."""
    require_sight(ctx)
    if path.stat().st_size > MAX_PICTURE_BYTES:
        raise InvalidInputError(f"The picture is over {MAX_PICTURE_BYTES // 2**20} MB; attach a smaller one.")
    normalized_png(path.read_bytes())


def attached(message: Message) -> list[str]:
    """The names of the pictures stored with a message (an odd record reads as none)."""
    names = message.meta.get(IMAGES_KEY)
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def thumbnails(ctx: AppContext, session_id: str, message: Message) -> list[str]:
    """Small copies of a message's pictures as `data:` URIs (one gone from the folder is left out)."""
    uris = []
    for name in attached(message):
        try:
            uris.append(ctx.store.sessions.images.thumbnail_uri(session_id, name))
        except StoreError:
            continue
    return uris
