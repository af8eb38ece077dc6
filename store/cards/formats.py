"""Import any card file (exports are in `store.cards.exports`).

`import_card` is a pure function of the file's bytes: it detects the format from the
content (never the file name), checks every limit, and returns everything or raises
`CardFormatError` with one plain sentence. Nothing read from a card becomes a path.
"""

from __future__ import annotations

from store.cards.charx import CARD_MEMBER, CharxReader, embedded_path
from store.cards.decode import check_size, load_json, load_yaml
from store.cards.model import MAX_FILE_BYTES, AssetFile, CardAsset, CharacterCard, ImportedCard
from store.cards.parse import card_from_json, card_from_yaml
from store.cards.png import PNG_SIGNATURE, TextChunk, read_png
from store.errors import CardFormatError

NOT_A_CARD = "it is not a character card Hearth can read (cards are PNG, CHARX, JSON or YAML files)"
LEGACY_ASSET_PREFIX = "__asset:"


def import_card(data: bytes, filename: str) -> ImportedCard:
    """Read a character card from a PNG, CHARX, JSON (V1/V2/V3, Pygmalion) or YAML file.

    Args:
        data: the whole file.
        filename: the name the user gave it; only shown in error messages.

    Returns:
        The card, its avatar (a PNG without text chunks) if the file has one, the
        embedded asset files under generated keys, and warnings for the user.

    Raises:
        CardTooLargeError: the file, a chunk, an archive member or a field is over its limit.
        CardFormatError: anything else is wrong; the message names what.
    """
    try:
        return _import(bytes(data))
    except CardFormatError as err:
        raise type(err)(f"Could not import {_shown(filename)}: {err}.") from err


def _shown(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable())[:80]
    return f"“{name}”" if name else "the file"


def _import(data: bytes) -> ImportedCard:
    check_size(len(data), MAX_FILE_BYTES, "the file")
    if not data:
        raise CardFormatError("the file is empty")
    if data.startswith(PNG_SIGNATURE):
        return _from_png(data)
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _from_charx(data)
    if data.startswith(b"\xff\xd8\xff"):
        if b"PK\x05\x06" in data[-65_600:]:  # RisuAI's "CHARX-JPEG": a picture with a zip appended
            return _from_charx(data)
        raise CardFormatError(
            "it is a JPEG picture without a character card; cards are PNG, CHARX, JSON or YAML"
        )
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise CardFormatError("WEBP cards are not supported; save the card as PNG")
    return _from_text(data)


def _from_text(data: bytes) -> ImportedCard:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CardFormatError(NOT_A_CARD) from None
    if text.lstrip().startswith(("{", "[")):
        card, warnings = card_from_json(load_json(data, "the JSON"))
        return ImportedCard(card=card, source_format="json", warnings=tuple(warnings))
    card, warnings = card_from_yaml(load_yaml(text, "the YAML"))
    return ImportedCard(card=card, source_format="yaml", warnings=tuple(warnings))


def _from_png(data: bytes) -> ImportedCard:
    png = read_png(data)
    card, warnings = _card_from_chunks(png.cards)
    files, missing = _legacy_asset_files(card, png.assets)
    warnings += _missing_warning(missing)
    return ImportedCard(card, "png", png.picture, tuple(files), tuple(warnings))


def _card_from_chunks(chunks: dict[str, TextChunk]) -> tuple[CharacterCard, list[str]]:
    # V3 wins (the spec says so); if its chunk is damaged the V2 copy is the next best thing.
    ccv3, chara = chunks.get("ccv3"), chunks.get("chara")
    if ccv3 is None or chara is None:
        only = ccv3 or chara
        if only is None:
            raise CardFormatError("this PNG has no character card in it")
        return _card_from_chunk(only)
    try:
        return _card_from_chunk(ccv3)
    except CardFormatError as err:
        try:
            card, warnings = _card_from_chunk(chara)
        except CardFormatError:
            raise err from None
        note = (
            f"The card's V3 data is damaged ({err}), so its V2 copy was imported; V3-only fields are missing."
        )
        return card, [note, *warnings]


def _card_from_chunk(chunk: TextChunk) -> tuple[CharacterCard, list[str]]:
    return card_from_json(load_json(chunk.decode(), f"the {chunk.keyword} chunk"))


def _legacy_asset_files(card: CharacterCard, chunks: dict[str, TextChunk]) -> tuple[list[AssetFile], int]:
    files: dict[str, AssetFile] = {}
    missing = 0
    for asset in card.assets or []:
        if not asset.uri.startswith(LEGACY_ASSET_PREFIX) or asset.uri in files:
            continue
        chunk = chunks.get(asset.uri[len(LEGACY_ASSET_PREFIX) :])
        if chunk is None:
            missing += 1
            continue
        files[asset.uri] = _asset_file(len(files), asset, chunk.decode())
    return list(files.values()), missing


def _asset_file(index: int, asset: CardAsset, payload: bytes) -> AssetFile:
    ext = asset.ext.lower()
    clean = ext if ext.isascii() and ext.isalnum() and len(ext) <= 10 else "bin"
    return AssetFile(key=f"asset-{index:03d}", uri=asset.uri, ext=clean, data=payload)


def _missing_warning(missing: int) -> list[str]:
    if not missing:
        return []
    return [f"{missing} of the card's assets are not in the file; their entries were kept without a file."]


def _from_charx(data: bytes) -> ImportedCard:
    with CharxReader(data) as archive:
        raw = archive.read(CARD_MEMBER)
        if raw is None:
            raise CardFormatError("card.json is missing from the CHARX archive")
        card, warnings = card_from_json(load_json(raw, "card.json"))
        files: dict[str, AssetFile] = {}
        missing = 0
        for asset in card.assets or []:
            path = embedded_path(asset.uri)
            if path is None or asset.uri in files:
                continue
            payload = archive.read(path)
            if payload is None:
                missing += 1
                continue
            files[asset.uri] = _asset_file(len(files), asset, payload)
    avatar, avatar_warnings = _charx_avatar(card, files)
    warnings += _missing_warning(missing) + avatar_warnings
    return ImportedCard(card, "charx", avatar, tuple(files.values()), tuple(warnings))


def main_icon(card: CharacterCard) -> CardAsset | None:
    """The card's main icon: the first `icon` asset named "main", else the first icon."""
    icons = [asset for asset in card.assets or [] if asset.type == "icon"]
    return next((asset for asset in icons if asset.name == "main"), icons[0] if icons else None)


def _charx_avatar(card: CharacterCard, files: dict[str, AssetFile]) -> tuple[bytes | None, list[str]]:
    icon = main_icon(card)
    if icon is None or icon.uri not in files:
        return None, []
    payload = files[icon.uri].data
    if not payload.startswith(PNG_SIGNATURE):
        return None, [
            "The card's icon is not a PNG picture; it was kept with the assets but is not the avatar."
        ]
    try:
        return read_png(payload).picture, []
    except CardFormatError as err:
        return None, [f"The card's icon could not be used as the avatar ({err})."]
