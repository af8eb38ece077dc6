"""Export cards as JSON, PNG or CHARX, writing back everything the card came in with.

A PNG has no archive, so a card's asset files travel in the V3 spec's legacy PNG asset
chunks, and what does not fit is left out with a note; CHARX keeps them all.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from store.cards.charx import CARD_MEMBER, embedded_path, write_charx
from store.cards.decode import check_size, dump_json
from store.cards.formats import LEGACY_ASSET_PREFIX, main_icon
from store.cards.model import MAX_CHUNK_BYTES, MAX_FILE_BYTES, AssetFile, CardAsset, CharacterCard
from store.cards.png import ASSET_KEYWORD, plain_png, read_png, text_chunk, with_text_chunks
from store.cards.serialize import card_dict
from store.errors import CardFormatError

DEFAULT_ICON_URI = "ccdefault:"  # V3: the default icon, which in a PNG card is the picture itself
_PNG_SLACK = 64 * 1024  # chunk headers and keywords, with room to spare
_MAIN_ICON_PATH = "assets/icon/images/main.png"


@contextmanager
def _exporting() -> Iterator[None]:
    try:
        yield
    except CardFormatError as err:
        raise type(err)(f"Could not export the card: {err}.") from err


def _stamp(now: int | None) -> int:
    return int(time.time()) if now is None else now


def _picture(avatar_png: bytes | None) -> bytes:
    if avatar_png is None:
        return plain_png()
    try:
        return read_png(bytes(avatar_png)).picture
    except CardFormatError as err:
        raise type(err)(f"the avatar picture cannot be used ({err})") from err


def export_json(
    card: CharacterCard, spec: Literal["v2", "v3"] | None = None, *, now: int | None = None
) -> bytes:
    """The card as UTF-8 JSON, in the spec it came in (V1 cards as V2 with the V1 fields mirrored).

    `spec="v3"` upgrades a V1/V2 card; `spec="v2"` of a V3 card writes the reduced V2
    backfill. `now` (Unix seconds, default the current time) is the V3 `modification_date`.
    """
    target = spec or ("v3" if card.spec == "v3" else "v2")
    backfill = target == "v2" and card.spec == "v3"
    return dump_json(card_dict(card, target, now=_stamp(now), backfill=backfill), compact=False)


@dataclass(frozen=True)
class PngExport:
    """A PNG card, and plain sentences for the user about what it could not carry as it was."""

    data: bytes
    notes: tuple[str, ...] = ()


def export_png(
    card: CharacterCard,
    avatar_png: bytes | None,
    *,
    asset_files: Sequence[AssetFile] = (),
    now: int | None = None,
) -> bytes:
    """The bytes of `export_png_report`: a PNG card."""
    return export_png_report(card, avatar_png, asset_files=asset_files, now=now).data


def export_png_report(
    card: CharacterCard,
    avatar_png: bytes | None,
    *,
    asset_files: Sequence[AssetFile] = (),
    now: int | None = None,
) -> PngExport:
    """A PNG card: the avatar (or a plain generated picture) with a `chara` V2 card and a `ccv3` V3 card.

    Old text chunks of the avatar are removed; the new ones go just before IEND. The
    `chara` chunk of a V2 (or V1) card is that card as it is; only a V3 card gets the
    reduced V2 backfill, whose creator's notes say so (the V3 spec asks for that warning
    there, and nowhere else).

    A PNG has no archive for `embeded://` files, so the card's asset files go into the
    spec's legacy asset chunks (`chara-ext-asset_N`, referenced as `__asset:N`), and a
    main icon that the avatar replaces becomes `ccdefault:` (the PNG's own picture). Files
    that would take the PNG past the sizes Hearth reads are left out with their entries,
    and `notes` says so: a CHARX export keeps them.

    Raises:
        CardFormatError: the avatar is not a usable PNG.
        CardTooLargeError: the card JSON is over the chunk limit Hearth itself reads.
    """
    with _exporting():
        picture = _picture(avatar_png)
        stamp = _stamp(now)
        # Room for asset files (before base64) once the picture and the two card copies are in.
        card_size = len(dump_json(card_dict(card, "v3", now=stamp), compact=True))
        room = (MAX_FILE_BYTES - len(picture) - 3 * card_size - _PNG_SLACK) * 3 // 4
        card, asset_chunks, notes = _png_assets(card, asset_files, avatar_png is not None, room)
        chunks = [
            _card_chunk("chara", card_dict(card, "v2", now=stamp, backfill=card.spec == "v3")),
            _card_chunk("ccv3", card_dict(card, "v3", now=stamp)),
            *asset_chunks,
        ]
        return PngExport(with_text_chunks(picture, chunks), tuple(notes))


def _card_chunk(keyword: str, value: dict[str, Any]) -> bytes:
    encoded = base64.b64encode(dump_json(value, compact=True))
    check_size(len(encoded), MAX_CHUNK_BYTES, f"the {keyword} chunk")
    return text_chunk(keyword, encoded)


def _png_assets(
    card: CharacterCard, asset_files: Sequence[AssetFile], icon_is_picture: bool, room: int
) -> tuple[CharacterCard, list[bytes], list[str]]:
    """The card as a PNG holds it (asset uris rewritten), its asset chunks, and notes.

    `room` is how many bytes of asset files (before base64) the PNG may still take.
    """
    if not card.assets:
        return card, [], []
    by_uri = {file.uri: file for file in asset_files}
    icon = main_icon(card) if icon_is_picture else None
    taken = {a.uri[len(LEGACY_ASSET_PREFIX) :] for a in card.assets if a.uri.startswith(LEGACY_ASSET_PREFIX)}
    numbers = (str(n) for n in itertools.count() if str(n) not in taken)
    assets: list[CardAsset] = []
    chunks: list[bytes] = []
    written: dict[str, str | None] = {}  # a uri already handled: its new uri, or None if left out
    carried = dropped = 0
    for asset in card.assets:
        embedded = embedded_path(asset.uri) is not None
        if asset is icon and embedded:
            assets.append(replace(asset, uri=DEFAULT_ICON_URI))
            continue
        file = by_uri.get(asset.uri)
        legacy = asset.uri.startswith(LEGACY_ASSET_PREFIX)
        index = asset.uri[len(LEGACY_ASSET_PREFIX) :] if legacy else None
        if file is None or not (embedded or (index is not None and _keyword_safe(index))):
            assets.append(asset)  # a URL, `ccdefault:`, or a reference whose file never came in
            continue
        if asset.uri not in written:
            index = index or next(numbers)
            if len(file.data) > min(room, MAX_CHUNK_BYTES * 3 // 4):
                written[asset.uri] = None
            else:
                room -= len(file.data)
                chunks.append(text_chunk(ASSET_KEYWORD + index, base64.b64encode(file.data)))
                written[asset.uri] = LEGACY_ASSET_PREFIX + index
        new_uri = written[asset.uri]
        if new_uri is None:
            dropped += 1
            continue
        carried += embedded
        assets.append(replace(asset, uri=new_uri))
    return replace(card, assets=assets), chunks, _png_asset_notes(carried, dropped)


def _png_asset_notes(carried: int, dropped: int) -> list[str]:
    notes = []
    if carried:
        notes.append(
            f"The PNG holds the card's {_files(carried)} in the older PNG asset form, which not every "
            "app reads; a CHARX export keeps them in the form made for them."
        )
    if dropped:
        notes.append(
            f"The card's {_files(dropped)} did not fit in a PNG and {'was' if dropped == 1 else 'were'} "
            "left out of it; a CHARX export keeps them."
        )
    return notes


def _files(count: int) -> str:
    return "asset file" if count == 1 else f"{count} asset files"


def _keyword_safe(index: str) -> bool:
    return 0 < len(index) <= 60 and index.isascii() and all(c.isalnum() or c in "-_." for c in index)


def export_charx(
    card: CharacterCard,
    avatar_png: bytes | None = None,
    asset_files: Sequence[AssetFile] = (),
    *,
    now: int | None = None,
) -> bytes:
    """A CHARX archive: `card.json` (V3) and every `embeded://` asset that has a file.

    The avatar, when given, replaces the main icon's file; a card without an embedded
    icon gets one at `assets/icon/images/main.png`. Files of legacy PNG asset chunks
    (`__asset:N`) become archive members, under the spec's recommended folders.
    """
    with _exporting():
        members: dict[str, bytes] = {}
        card, asset_files = _legacy_as_embedded(card, asset_files)
        if avatar_png is not None:
            card, icon_path = _with_embedded_icon(card)
            members[icon_path] = _picture(avatar_png)
        by_uri = {file.uri: file for file in asset_files}
        for asset in card.assets or []:
            path = embedded_path(asset.uri)
            if path and path != CARD_MEMBER and path not in members and asset.uri in by_uri:
                members[path] = by_uri[asset.uri].data
        card_json = dump_json(card_dict(card, "v3", now=_stamp(now)), compact=False)
        return write_charx([(CARD_MEMBER, card_json), *members.items()])


def _with_embedded_icon(card: CharacterCard) -> tuple[CharacterCard, str]:
    """The card with an embedded main icon (added if it has none), and that icon's archive path."""
    icon = main_icon(card)
    icon_path = embedded_path(icon.uri) if icon is not None else None
    if icon_path:
        return card, icon_path
    taken = {embedded_path(asset.uri) for asset in card.assets or []}
    path, n = _MAIN_ICON_PATH, 1
    while path in taken:
        path, n = f"assets/icon/images/main-{n}.png", n + 1
    new_icon = CardAsset(type="icon", uri=f"embeded://{path}", name="main", ext="png")
    return replace(card, assets=[new_icon, *(card.assets or [])]), path


_ASSET_FOLDERS = ("icon", "background", "emotion", "user_icon")
_IMAGE_EXTS = ("png", "jpg", "jpeg", "webp", "gif", "avif", "bmp")


def _legacy_as_embedded(
    card: CharacterCard, asset_files: Sequence[AssetFile]
) -> tuple[CharacterCard, list[AssetFile]]:
    """The card with each `__asset:N` that has a file referenced as an archive member instead.

    The member path is built from Hearth's own key and cleaned extension, never from the card.
    """
    files = {file.uri: file for file in asset_files}
    moved: dict[str, AssetFile] = {}
    taken = {embedded_path(asset.uri) for asset in card.assets or []}
    for asset in card.assets or []:
        file = files.get(asset.uri)
        if not asset.uri.startswith(LEGACY_ASSET_PREFIX) or file is None or asset.uri in moved:
            continue
        folder = asset.type if asset.type in _ASSET_FOLDERS else "other"
        media = "images" if file.ext in _IMAGE_EXTS else "other"
        path, n = f"assets/{folder}/{media}/{file.key}.{file.ext}", 1
        while path in taken:
            path, n = f"assets/{folder}/{media}/{file.key}-{n}.{file.ext}", n + 1
        taken.add(path)
        moved[asset.uri] = replace(file, uri=f"embeded://{path}")
    if not moved:
        return card, list(asset_files)
    assets = [replace(a, uri=moved[a.uri].uri) if a.uri in moved else a for a in card.assets or []]
    return replace(card, assets=assets), [moved.get(file.uri, file) for file in asset_files]
