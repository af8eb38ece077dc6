"""Character cards: import from PNG, CHARX, JSON and YAML files, export to PNG, JSON and CHARX.

Every field of the V1, V2 and V3 specs is modelled, every unknown key is kept and written
back, and every import is bounded and validated (see the limits in `store.cards.model`).
"""

from store.cards.decode import load_json, size_text
from store.cards.exports import PngExport, export_charx, export_json, export_png, export_png_report
from store.cards.extensions import DepthPrompt, read_depth_prompt
from store.cards.formats import import_card, main_icon
from store.cards.model import (
    MAX_ARCHIVE_BYTES,
    MAX_ARCHIVE_MEMBERS,
    MAX_BOOK_ENTRIES,
    MAX_CHUNK_BYTES,
    MAX_FILE_BYTES,
    MAX_JSON_BYTES,
    MAX_JSON_NODES,
    MAX_LIST_ITEMS,
    MAX_MEMBER_BYTES,
    MAX_TEXT_CHARS,
    MAX_YAML_BYTES,
    AssetFile,
    CardAsset,
    CharacterBook,
    CharacterCard,
    ImportedCard,
    LoreEntry,
)
from store.cards.parse import card_from_json
from store.cards.png import avatar_picture, plain_png
from store.cards.serialize import BACKFILL_NOTE, CardRecord, card_dict, card_from_record, card_to_record

__all__ = [
    "AssetFile",
    "BACKFILL_NOTE",
    "CardAsset",
    "CardRecord",
    "CharacterBook",
    "CharacterCard",
    "DepthPrompt",
    "ImportedCard",
    "LoreEntry",
    "MAX_ARCHIVE_BYTES",
    "MAX_ARCHIVE_MEMBERS",
    "MAX_BOOK_ENTRIES",
    "MAX_CHUNK_BYTES",
    "MAX_FILE_BYTES",
    "MAX_JSON_BYTES",
    "MAX_JSON_NODES",
    "MAX_LIST_ITEMS",
    "MAX_MEMBER_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_YAML_BYTES",
    "PngExport",
    "avatar_picture",
    "card_dict",
    "card_from_json",
    "card_from_record",
    "card_to_record",
    "export_charx",
    "export_json",
    "export_png",
    "export_png_report",
    "import_card",
    "load_json",
    "main_icon",
    "plain_png",
    "read_depth_prompt",
    "size_text",
]
