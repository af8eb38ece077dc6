"""Character cards as Hearth holds them: every field of the V1, V2 and V3 specs, nothing lost.

A card can come from many apps, and each writes keys Hearth does not know (SillyTavern's
V1 mirror fields and `avatar`/`chat`/`fav`, RisuAI's extensions, fields of a newer spec).
Every level of the card therefore carries an `extra` dict that holds those keys verbatim,
and exporting writes them back. Optional fields are `None` when the card did not have
them, so an export never adds keys the original lacked (except where a spec requires it).

The limits below bound what an import may cost in memory and time; `import_card` checks
them before and while decoding, so a hostile file fails fast with `CardTooLargeError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Spec = Literal["v1", "v2", "v3"]
SourceFormat = Literal["png", "json", "charx", "yaml"]
Number = int | float

MAX_FILE_BYTES = 32 * 1024 * 1024
"""A whole card file (PNG, CHARX, JSON or YAML)."""
MAX_CHUNK_BYTES = 16 * 1024 * 1024
"""One PNG `chara`/`ccv3`/asset chunk that is decoded; bigger unknown chunks are skipped unread."""
MAX_JSON_BYTES = 16 * 1024 * 1024
"""The card JSON, as a file, as decoded from a chunk, or as `card.json` in a CHARX."""
MAX_YAML_BYTES = 1024 * 1024
"""A YAML character (text-generation-webui's are a few KB)."""
MAX_YAML_NODES = 20_000
"""Values in a YAML card, aliases counted as what they repeat; checked before any is built,
as PyYAML builds values in Python (a 1 MB file of small values takes seconds)."""
MAX_TEXT_CHARS = 1_000_000
"""Any one text field of a card or lorebook entry."""
MAX_LIST_ITEMS = 1_000
"""Greetings, tags, sources, lorebook keys and assets."""
MAX_BOOK_ENTRIES = 10_000
MAX_JSON_NODES = 1_000_000
"""Values in the card JSON; also stops YAML alias bombs, which expand when walked."""
MAX_ARCHIVE_MEMBERS = 1_000
MAX_MEMBER_BYTES = 32 * 1024 * 1024
"""One decompressed CHARX member."""
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024
"""All CHARX members read, decompressed, together."""
MAX_AVATAR_SIDE = 16_384
MAX_AVATAR_PIXELS = 64 * 1024 * 1024

V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")


@dataclass
class LoreEntry:
    """One lorebook entry. Optional fields are `None` when the card left them out."""

    keys: list[str] = field(default_factory=list)
    content: str = ""
    extensions: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    insertion_order: Number = 0
    case_sensitive: bool | None = None
    name: str | None = None
    priority: Number | None = None
    id: int | str | None = None
    comment: str | None = None
    selective: bool | None = None
    secondary_keys: list[str] | None = None
    constant: bool | None = None
    position: str | None = None
    use_regex: bool | None = None  # V3; required there, so V3 imports fill `False`
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CharacterBook:
    """A lorebook embedded in a card (`data.character_book`)."""

    entries: list[LoreEntry] = field(default_factory=list)
    extensions: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None
    scan_depth: Number | None = None
    token_budget: Number | None = None
    recursive_scanning: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CardAsset:
    """A V3 asset reference: `uri` is `embeded://path`, `ccdefault:`, a URL or `__asset:N`.

    The uri is kept as the card wrote it and is never used as a file name.
    """

    type: str
    uri: str
    name: str = ""
    ext: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CharacterCard:
    """A character: the V2 fields, the V3 additions, and everything else the file held.

    `spec` is the spec the card came in as. `v1_mirror` records that the file also had
    the V1 fields at its top level (V1 files and SillyTavern's hybrid JSON); an export
    then writes them there again. `extra` holds unknown keys under `data`, `top_level`
    unknown keys beside `spec`/`spec_version`/`data`.
    """

    name: str = ""
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    creator_notes: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    alternate_greetings: list[str] = field(default_factory=list)
    character_book: CharacterBook | None = None
    tags: list[str] = field(default_factory=list)
    creator: str = ""
    character_version: str = ""
    extensions: dict[str, Any] = field(default_factory=dict)
    # V3 additions: None means "not in the card".
    nickname: str | None = None
    creator_notes_multilingual: dict[str, str] | None = None
    source: list[str] | None = None
    group_only_greetings: list[str] | None = None  # required by V3, so V3 imports fill []
    creation_date: Number | None = None
    modification_date: Number | None = None
    assets: list[CardAsset] | None = None
    # Where it came from, and what Hearth does not understand but must write back.
    spec: Spec = "v3"
    v1_mirror: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    top_level: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AssetFile:
    """The bytes of one asset the card embeds (a CHARX member or a legacy PNG asset chunk).

    `key` is generated by Hearth ("asset-000", …) and safe as a file name; `uri` is the
    card's reference to it (`embeded://…` or `__asset:N`), and `ext` is a cleaned-up
    extension ("png", "bin", …). Neither the uri nor the asset's name is ever a path.
    """

    key: str
    uri: str
    ext: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class ImportedCard:
    """Everything one card file holds, fully validated.

    `avatar_png` is a PNG with every text chunk removed (so no stale card rides along),
    or None when the file has no usable PNG picture. `warnings` are plain sentences for
    the user about things that were imported but may not work as the author meant.
    """

    card: CharacterCard
    source_format: SourceFormat
    avatar_png: bytes | None = field(default=None, repr=False)
    asset_files: tuple[AssetFile, ...] = ()
    warnings: tuple[str, ...] = ()
