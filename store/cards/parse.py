"""Plain JSON values to `CharacterCard`: V1, V2, V3, Pygmalion JSON and text-generation-webui YAML.

Every field is type-checked and every error names the field by its path in the file
("data.character_book.entries[3].keys must be a list of strings"). Keys the parser does
not know are kept verbatim in the `extra` of the object they were found in.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from store.cards.decode import short
from store.cards.extensions import checked_extensions
from store.cards.model import (
    MAX_BOOK_ENTRIES,
    MAX_LIST_ITEMS,
    MAX_TEXT_CHARS,
    V1_FIELDS,
    CardAsset,
    CharacterBook,
    CharacterCard,
    LoreEntry,
    Number,
    Spec,
)
from store.errors import CardFormatError, CardTooLargeError
from store.untrusted import Reader

SUPPORTED_V3_VERSION = 3.0
LOREBOOK_MESSAGE = "this file is a lorebook (world info), not a character card"
_WRAPPER_KEYS = ("spec", "spec_version", "data")
# Flat formats: each card field and the keys it may come under, first match wins.
_FLAT_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "char_name"),
    "description": ("description", "context", "char_persona"),
    "personality": ("personality",),
    "scenario": ("scenario", "world_scenario"),
    "first_mes": ("first_mes", "greeting", "char_greeting"),
    "mes_example": ("mes_example", "example_dialogue"),
}
READ = Reader(
    CardFormatError,
    CardTooLargeError,
    wrong_type="{where} must be {expected}",
    too_long="{where} is too long ({length:,} characters; the limit is {limit:,})",
    too_many="{where} has {count:,} items; the limit is {limit:,}",
)


class _Fields:
    """Typed reads from one JSON object; whatever is not read stays in `rest()`.

    A missing or null required field takes its default. A null optional field is left
    unread, so it goes back out as null through `extra`.
    """

    def __init__(self, obj: dict[str, Any], path: str, *, coerce_scalars: bool = False) -> None:
        self._obj = obj
        self._path = path
        self._read: set[str] = set()
        self._coerce = coerce_scalars

    def where(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def _get(self, key: str, *, optional: bool) -> Any:
        value = self._obj.get(key)
        if value is not None or not optional:
            self._read.add(key)
        return value

    def _text(self, key: str, value: Any, limit: int | None) -> str:
        if self._coerce and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        return READ.text(value, self.where(key), limit)

    def text(self, key: str, *, limit: int | None = MAX_TEXT_CHARS) -> str:
        value = self._get(key, optional=False)
        return "" if value is None else self._text(key, value, limit)

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, optional=True)
        return None if value is None else self._text(key, value, MAX_TEXT_CHARS)

    def _strings(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise READ.wrong(value, self.where(key), "a list of strings")
        READ.check_count(len(value), MAX_LIST_ITEMS, self.where(key))
        for item in value:
            if len(item) > MAX_TEXT_CHARS:
                raise CardTooLargeError(
                    f"an item of {self.where(key)} is too long ({len(item):,} characters)"
                )
        return list(value)

    def strings(self, key: str) -> list[str]:
        value = self._get(key, optional=False)
        return [] if value is None else self._strings(key, value)

    def opt_strings(self, key: str) -> list[str] | None:
        value = self._get(key, optional=True)
        return None if value is None else self._strings(key, value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, optional=False)
        return default if value is None else self._bool(key, value)

    def opt_bool(self, key: str) -> bool | None:
        value = self._get(key, optional=True)
        return None if value is None else self._bool(key, value)

    def _bool(self, key: str, value: Any) -> bool:
        return READ.flag(value, self.where(key))

    def number(self, key: str, default: Number) -> Number:
        value = self._get(key, optional=False)
        return default if value is None else self._number(key, value)

    def opt_number(self, key: str) -> Number | None:
        value = self._get(key, optional=True)
        return None if value is None else self._number(key, value)

    def _number(self, key: str, value: Any) -> Number:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise READ.wrong(value, self.where(key), "a number")
        if not abs(value) <= sys.float_info.max:  # also NaN and infinity, from code rather than JSON
            raise CardFormatError(f"{self.where(key)} is a number too large to store")
        return value

    def opt_id(self, key: str) -> int | str | None:
        value = self._get(key, optional=True)
        if value is None or (isinstance(value, (int, str)) and not isinstance(value, bool)):
            return value
        raise READ.wrong(value, self.where(key), "a number or text")

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._get(key, optional=False)
        return {} if value is None else self._mapping(key, value)

    def opt_mapping(self, key: str) -> dict[str, Any] | None:
        value = self._get(key, optional=True)
        return None if value is None else self._mapping(key, value)

    def _mapping(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):  # parsed JSON or YAML: every object is a dict
            raise READ.wrong(value, self.where(key), "an object (names mapped to values)")
        return value

    def items(self, key: str) -> list[Any]:
        return self._list(key, self._get(key, optional=False)) or []

    def opt_list(self, key: str) -> list[Any] | None:
        return self._list(key, self._get(key, optional=True))

    def _list(self, key: str, value: Any) -> list[Any] | None:
        return None if value is None else READ.items(value, self.where(key))

    def rest(self) -> dict[str, Any]:
        return {key: value for key, value in self._obj.items() if key not in self._read}


def card_from_json(value: Any) -> tuple[CharacterCard, list[str]]:
    """Read a card from parsed JSON (or YAML), whatever its flavour.

    Returns:
        The card and a list of warnings for the user (e.g. a newer V3 spec version).

    Raises:
        CardFormatError: a lorebook, an unknown spec, or an invalid field (named).
    """
    if not isinstance(value, dict):
        raise CardFormatError("the file is not a character card (its top level is not an object)")
    spec = value.get("spec")
    if spec == "chara_card_v3":
        return _wrapped_card(value, "v3")
    if spec == "chara_card_v2":
        return _wrapped_card(value, "v2")
    if is_lorebook(value):
        raise CardFormatError(LOREBOOK_MESSAGE)
    if spec is not None:
        raise CardFormatError(
            f"the card's format {short(spec)} is not one Hearth reads (it reads chara_card_v2 and v3)"
        )
    if "char_name" in value or ("name" in value and any(key in value for key in V1_FIELDS[1:])):
        return flat_card(value), []
    raise CardFormatError("the file is not a character card (it has no name, spec or char_name)")


def is_lorebook(value: dict[str, Any]) -> bool:
    """A V3 standalone lorebook, a bare V2 character book, or a SillyTavern World Info file."""
    if value.get("spec") in ("lorebook_v3", "lorebook_v2"):
        return True
    card_keys = ("first_mes", "char_name", "char_greeting", "greeting", "data")
    return "entries" in value and not any(key in value for key in card_keys)


def flat_card(value: dict[str, Any], *, coerce_scalars: bool = False) -> CharacterCard:
    """A V1 card, Pygmalion JSON or text-generation-webui YAML, upgraded to the V2 shape."""
    fields = _Fields(value, "", coerce_scalars=coerce_scalars)

    def pick(target: str) -> str:
        aliases = _FLAT_ALIASES[target]
        return fields.text(next((alias for alias in aliases if alias in value), aliases[0]))

    card = CharacterCard(
        name=pick("name"),
        description=pick("description"),
        personality=pick("personality"),
        scenario=pick("scenario"),
        first_mes=pick("first_mes"),
        mes_example=pick("mes_example"),
        spec="v1",
        v1_mirror=True,
    )
    card.top_level = fields.rest()
    return card


def _wrapped_card(value: dict[str, Any], spec: Spec) -> tuple[CharacterCard, list[str]]:
    data = value.get("data")
    if not isinstance(data, dict):
        raise CardFormatError(f"the card says it is chara_card_{spec} but has no data object")
    warnings = _version_warnings(value.get("spec_version")) if spec == "v3" else []
    card = card_data(data, "data", spec)
    card.extensions, notes = checked_extensions(card.extensions)
    warnings += notes
    outside = {key: item for key, item in value.items() if key not in _WRAPPER_KEYS}
    card.v1_mirror = any(key in outside for key in V1_FIELDS)
    card.top_level = {key: item for key, item in outside.items() if key not in V1_FIELDS}
    return card, warnings


def _version_warnings(version: Any) -> list[str]:
    if version is None:
        return []
    try:
        number = float(version) if not isinstance(version, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise CardFormatError(f"spec_version {short(version)} is not a version number")
    if number > SUPPORTED_V3_VERSION:
        return [
            f"This card uses V3 spec version {str(version)[:20]}, newer than the "
            f"{SUPPORTED_V3_VERSION} Hearth knows. Fields Hearth does not know were kept "
            "and will be exported, but not used."
        ]
    return []


def card_data(data: dict[str, Any], path: str, spec: Spec) -> CharacterCard:
    """Read the `data` object of a V2 or V3 card. V3 fills the fields V3 requires."""
    fields = _Fields(data, path)
    card = CharacterCard(
        name=fields.text("name"),
        description=fields.text("description"),
        personality=fields.text("personality"),
        scenario=fields.text("scenario"),
        first_mes=fields.text("first_mes"),
        mes_example=fields.text("mes_example"),
        creator_notes=fields.text("creator_notes"),
        system_prompt=fields.text("system_prompt"),
        post_history_instructions=fields.text("post_history_instructions"),
        alternate_greetings=fields.strings("alternate_greetings"),
        tags=fields.strings("tags"),
        creator=fields.text("creator"),
        character_version=fields.text("character_version"),
        extensions=fields.mapping("extensions"),
        nickname=fields.opt_text("nickname"),
        creator_notes_multilingual=_multilingual(fields),
        source=fields.opt_strings("source"),
        # V3 requires it, so a V3 card without it (or with null) gets [].
        group_only_greetings=(
            fields.strings("group_only_greetings")
            if spec == "v3"
            else fields.opt_strings("group_only_greetings")
        ),
        creation_date=fields.opt_number("creation_date"),
        modification_date=fields.opt_number("modification_date"),
        spec=spec,
    )
    book = fields.opt_mapping("character_book")
    if book is not None:
        card.character_book = _book(book, fields.where("character_book"), spec)
    assets = fields.opt_list("assets")
    if assets is not None:
        READ.check_count(len(assets), MAX_LIST_ITEMS, fields.where("assets"))
        card.assets = [_asset(item, f"{fields.where('assets')}[{i}]") for i, item in enumerate(assets)]
    card.extra = fields.rest()
    return card


def _multilingual(fields: _Fields) -> dict[str, str] | None:
    notes = fields.opt_mapping("creator_notes_multilingual")
    if notes is None:
        return None
    READ.check_count(len(notes), MAX_LIST_ITEMS, fields.where("creator_notes_multilingual"))
    for text in notes.values():
        if not isinstance(text, str):
            raise CardFormatError(
                f"{fields.where('creator_notes_multilingual')} must map language codes to text"
            )
        if len(text) > MAX_TEXT_CHARS:
            raise CardTooLargeError(f"a note in {fields.where('creator_notes_multilingual')} is too long")
    return dict(notes)


def _book(value: dict[str, Any], path: str, spec: Spec) -> CharacterBook:
    fields = _Fields(value, path)
    entries = fields.items("entries")
    READ.check_count(len(entries), MAX_BOOK_ENTRIES, fields.where("entries"))
    return CharacterBook(
        entries=[_entry(item, f"{path}.entries[{i}]", spec) for i, item in enumerate(entries)],
        extensions=fields.mapping("extensions"),
        name=fields.opt_text("name"),
        description=fields.opt_text("description"),
        scan_depth=fields.opt_number("scan_depth"),
        token_budget=fields.opt_number("token_budget"),
        recursive_scanning=fields.opt_bool("recursive_scanning"),
        extra=fields.rest(),
    )


def _entry(value: Any, path: str, spec: Spec) -> LoreEntry:
    if not isinstance(value, dict):
        raise CardFormatError(f"{path} must be an object")
    fields = _Fields(value, path)
    entry = LoreEntry(
        keys=fields.strings("keys"),
        content=fields.text("content"),
        extensions=fields.mapping("extensions"),
        enabled=fields.boolean("enabled", True),
        insertion_order=fields.number("insertion_order", 0),
        case_sensitive=fields.opt_bool("case_sensitive"),
        name=fields.opt_text("name"),
        priority=fields.opt_number("priority"),
        id=fields.opt_id("id"),
        comment=fields.opt_text("comment"),
        selective=fields.opt_bool("selective"),
        secondary_keys=fields.opt_strings("secondary_keys"),
        constant=fields.opt_bool("constant"),
        position=fields.opt_text("position"),
        # Required by V3 (absent means plain keys); optional in V2.
        use_regex=fields.boolean("use_regex", False) if spec == "v3" else fields.opt_bool("use_regex"),
    )
    entry.extra = fields.rest()
    return entry


def _asset(value: Any, path: str) -> CardAsset:
    if not isinstance(value, dict):
        raise CardFormatError(f"{path} must be an object")
    fields = _Fields(value, path)
    return CardAsset(
        type=fields.text("type"),
        uri=fields.text("uri", limit=None),  # a data: URL may be long; the JSON limit bounds it
        name=fields.text("name"),
        ext=fields.text("ext"),
        extra=fields.rest(),
    )


def card_from_yaml(value: Any) -> tuple[CharacterCard, list[str]]:
    """A text-generation-webui character (`name`/`context`/`greeting`, or the older `char_*` keys)."""
    if not isinstance(value, dict):
        raise CardFormatError("the YAML file is not a character card (its top level is not a mapping)")
    if "instruction_template" in value or "turn_template" in value:
        raise CardFormatError("the YAML file is an instruction template, not a character card")
    if "spec" in value or is_lorebook(value):
        return card_from_json(value)
    if "name" not in value and "char_name" not in value:
        raise CardFormatError("the YAML file is not a character card (it has no name)")
    return flat_card(value, coerce_scalars=True), []
