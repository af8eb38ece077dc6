"""PNG chunks: find the card's text chunks cheaply, strip text from the picture, write new chunks.

A PNG is a signature and a list of chunks (length, type, data, CRC). Cards live in
`tEXt` chunks whose keyword is `chara` (V1/V2) or `ccv3` (V3), holding base64 of UTF-8
JSON; RisuAI also stores legacy assets as `chara-ext-asset_N` chunks. Only those chunks
are ever sliced out. Any other text chunk (RisuAI's multi-megabyte `risuai` one, say) is
stepped over by its length, never copied or checksummed; iTXt and zTXt are ignored, as
SillyTavern does. The avatar Hearth keeps is the picture with every text chunk removed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from store.cards.decode import check_size, decode_base64
from store.cards.model import MAX_AVATAR_PIXELS, MAX_AVATAR_SIDE, MAX_CHUNK_BYTES, MAX_LIST_ITEMS
from store.errors import CardFormatError, CardTooLargeError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_KEYWORDS = ("ccv3", "chara")  # in order of preference: V3 wins
ASSET_KEYWORD = "chara-ext-asset_"
MAX_PNG_CHUNKS = 100_000
_TEXT_TYPES = (b"tEXt", b"iTXt", b"zTXt")
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclass(frozen=True)
class TextChunk:
    """A located `tEXt` chunk whose text has not been read yet."""

    keyword: str
    view: memoryview = field(repr=False)  # the whole chunk: length, type, data, CRC
    text_start: int  # offset of the text inside `view`

    def decode(self) -> bytes:
        """The chunk's base64 text decoded to bytes, after its size and checksum are checked."""
        what = f"the {self.keyword} chunk"
        check_size(len(self.view) - 12, MAX_CHUNK_BYTES, what)
        if not _crc_ok(self.view):
            raise CardFormatError(f"{what} is damaged (its checksum does not match)")
        return decode_base64(bytes(self.view[self.text_start : -4]), what)


@dataclass(frozen=True)
class PngContents:
    """What a PNG holds for Hearth: card chunks by lowercase keyword, asset chunks, the bare picture."""

    cards: dict[str, TextChunk]
    assets: dict[str, TextChunk]  # by the index after "chara-ext-asset_" (a leading ":" dropped)
    picture: bytes = field(repr=False)


def avatar_picture(png: bytes | None) -> bytes | None:
    """The picture to keep as an avatar: `png` with its text chunks (an old card, say)
    stripped; None stays None.

    Raises:
        CardFormatError: `png` is not a usable PNG picture.
    """
    try:
        return None if png is None else read_png(bytes(png)).picture
    except CardFormatError as err:
        raise CardFormatError(f"That picture cannot be the avatar: {err}.") from err


def read_png(data: bytes) -> PngContents:
    """Walk every chunk once, keep the card and asset chunks, rebuild the picture without text.

    Critical chunks must have correct checksums; an ancillary chunk with a wrong one is
    dropped (as libpng does). The first card chunk of each keyword counts, and keywords
    match case-insensitively.

    Raises:
        CardFormatError: not a PNG, cut off, damaged, or without image data.
        CardTooLargeError: the picture's size is over the limits.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise CardFormatError("the file is not a PNG picture")
    view = memoryview(data)
    kept: list[memoryview] = [view[:8]]
    cards: dict[str, TextChunk] = {}
    assets: dict[str, TextChunk] = {}
    pos, count, seen_data = 8, 0, False
    while True:
        if pos + 12 > len(data):
            raise CardFormatError("the PNG is cut off (it ends before its last chunk)")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise CardFormatError("the PNG is damaged (a chunk header is not valid)")
        if end > len(data):
            raise CardFormatError("the PNG is cut off (it ends inside a chunk)")
        count += 1
        if count > MAX_PNG_CHUNKS:
            raise CardTooLargeError(f"the PNG has more than {MAX_PNG_CHUNKS:,} chunks")
        chunk = view[pos:end]
        if count == 1:
            _check_header(chunk, kind, length)
        if kind == b"IEND":
            kept.append(memoryview(_IEND))  # canonical, so new chunks can go right before it
            break
        if kind == b"tEXt":
            _file_text_chunk(chunk, cards, assets)
        elif kind not in _TEXT_TYPES:
            if _crc_ok(chunk):
                kept.append(chunk)
            elif kind[:1].isupper():
                raise CardFormatError(
                    f"the PNG's {kind.decode()} chunk is damaged (its checksum does not match)"
                )
            seen_data = seen_data or kind == b"IDAT"
        pos = end
    if not seen_data:
        raise CardFormatError("the PNG has no picture data")
    return PngContents(cards=cards, assets=assets, picture=b"".join(kept))


def _check_header(chunk: memoryview, kind: bytes, length: int) -> None:
    if kind != b"IHDR" or length != 13:
        raise CardFormatError("the PNG is damaged (it does not start with its header)")
    width, height = struct.unpack_from(">II", chunk, 8)
    if width == 0 or height == 0:
        raise CardFormatError("the PNG is damaged (its picture has no size)")
    if width > MAX_AVATAR_SIDE or height > MAX_AVATAR_SIDE or width * height > MAX_AVATAR_PIXELS:
        raise CardTooLargeError(f"the picture is too large ({width}×{height} pixels)")


def _file_text_chunk(chunk: memoryview, cards: dict[str, TextChunk], assets: dict[str, TextChunk]) -> None:
    # The keyword is 1-79 Latin-1 bytes then a NUL; only that much is read here.
    head = bytes(chunk[8 : min(len(chunk) - 4, 8 + 80)])
    nul = head.find(b"\0")
    if nul < 1:
        return  # not a valid tEXt chunk: ignored, and dropped from the picture
    keyword = head[:nul].decode("latin-1").lower()
    located = TextChunk(keyword=keyword, view=chunk, text_start=8 + nul + 1)
    if keyword in CARD_KEYWORDS:
        cards.setdefault(keyword, located)
    elif keyword.startswith(ASSET_KEYWORD) and len(assets) < MAX_LIST_ITEMS:
        assets.setdefault(keyword[len(ASSET_KEYWORD) :].removeprefix(":"), located)


def _crc_ok(chunk: memoryview) -> bool:
    stored = int.from_bytes(chunk[-4:], "big")
    return zlib.crc32(chunk[4:-4]) == stored


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def text_chunk(keyword: str, text: bytes) -> bytes:
    """A `tEXt` chunk; the keyword must be 1-79 Latin-1 characters, the text Latin-1 bytes."""
    return _chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + text)


def with_text_chunks(picture: bytes, chunks: list[bytes]) -> bytes:
    """Insert ready-made chunks just before IEND of a picture from `read_png` (which ends with IEND)."""
    if not picture.endswith(_IEND):
        raise CardFormatError("the picture does not end with an IEND chunk")
    return picture[: -len(_IEND)] + b"".join(chunks) + _IEND


def plain_png(width: int = 400, height: int = 600, rgb: tuple[int, int, int] = (0x6B, 0x4F, 0x43)) -> bytes:
    """A one-colour RGB PNG (default 400×600, the usual card shape, in a warm hearth brown)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes(rgb) * width
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(row * height, 9)) + _IEND
