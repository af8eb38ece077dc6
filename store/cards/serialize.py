"""`CharacterCard` to the JSON shapes of the V2 and V3 specs, and to a stored record.

Known fields are written in the specs' order, then every unknown key the card was
read with. What an export changes, always on purpose:

- `spec`/`spec_version` become `chara_card_v2` "2.0" or `chara_card_v3` "3.0";
- V3 exports write the fields V3 requires (`group_only_greetings`, each entry's
  `use_regex`) and set `modification_date` to the export time;
- missing required fields are written with their defaults ("" / [] / {} / true / 0);
- the V1 fields mirrored at the top level (V1 files, SillyTavern's hybrid) are written
  from the card, so they always agree with `data`;
- a V2 backfill (the `chara` copy beside a V3 card's `ccv3`) drops the V3-only fields and
  entry decorators, and says in `creator_notes` that it is a reduced copy, as the V3
  spec asks. Only a V3 card gets a backfill: a V2 card's `chara` copy is the card itself.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal, TypedDict

from store.cards.model import V1_FIELDS, CardAsset, CharacterBook, CharacterCard, LoreEntry, Spec
from store.cards.parse import card_from_json
from store.errors import CardFormatError, StoreCorruptError

Target = Literal["v2", "v3"]
RECORD_SCHEMA = 1
SPEC_NAMES: dict[Target, tuple[str, str]] = {"v2": ("chara_card_v2", "2.0"), "v3": ("chara_card_v3", "3.0")}
BACKFILL_NOTE = (
    "[Hearth: this is a V3 character card saved in the older V2 format for apps that only read V2. "
    "Some V3 fields (nickname, group greetings, assets, multilingual notes, dates) are left out here; "
    "an app that reads V3 cards shows the full card.]"
)
_V3_OPTIONAL = ("nickname", "creator_notes_multilingual", "source", "creation_date")


class CardRecord(TypedDict):
    """How the store keeps a card: its exact JSON plus the spec it came in as."""

    schema: int
    spec: Spec
    card: dict[str, Any]


def card_dict(
    card: CharacterCard, target: Target, *, now: int | None, backfill: bool = False
) -> dict[str, Any]:
    """The card as a spec-shaped JSON object (sharing the card's lists and dicts: dump it, do not keep it).

    Args:
        card: the card.
        target: "v2" or "v3".
        now: Unix seconds for a V3 `modification_date`; None keeps the card's own.
        backfill: write the reduced V2 copy that accompanies a V3 card in a PNG.
    """
    spec_name, version = SPEC_NAMES[target]
    data = _data(card, target, now=now, backfill=backfill)
    top: dict[str, Any] = {key: data[key] for key in V1_FIELDS} if card.v1_mirror else {}
    for key, value in card.top_level.items():
        top.setdefault(key, value)
    top.update(spec=spec_name, spec_version=version, data=data)
    return top


def _data(card: CharacterCard, target: Target, *, now: int | None, backfill: bool) -> dict[str, Any]:
    data: dict[str, Any] = {key: getattr(card, key) for key in V1_FIELDS}
    data.update(
        creator_notes=_with_note(card.creator_notes) if backfill else card.creator_notes,
        system_prompt=card.system_prompt,
        post_history_instructions=card.post_history_instructions,
        alternate_greetings=card.alternate_greetings,
        tags=card.tags,
        creator=card.creator,
        character_version=card.character_version,
        extensions=card.extensions,
    )
    if card.character_book is not None:
        data["character_book"] = _book(card.character_book, target, backfill)
    if not backfill:
        data.update(_v3_fields(card, target, now))
    for key, value in card.extra.items():
        data.setdefault(key, value)
    return data


def _v3_fields(card: CharacterCard, target: Target, now: int | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        key: getattr(card, key) for key in _V3_OPTIONAL if getattr(card, key) is not None
    }
    if target == "v3" or card.group_only_greetings is not None:
        fields["group_only_greetings"] = card.group_only_greetings or []
    modified = now if target == "v3" and now is not None else card.modification_date
    if modified is not None:
        fields["modification_date"] = modified
    if card.assets is not None:
        fields["assets"] = [_asset(asset) for asset in card.assets]
    return fields


def _with_note(notes: str) -> str:
    if notes.startswith(BACKFILL_NOTE):
        return notes
    return f"{BACKFILL_NOTE}\n\n{notes}" if notes else BACKFILL_NOTE


def _book(book: CharacterBook, target: Target, backfill: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("name", "description", "scan_depth", "token_budget", "recursive_scanning"):
        if getattr(book, key) is not None:
            out[key] = getattr(book, key)
    out["extensions"] = book.extensions
    out["entries"] = [_entry(entry, target, backfill) for entry in book.entries]
    for key, value in book.extra.items():
        out.setdefault(key, value)
    return out


_ENTRY_OPTIONAL = (
    "case_sensitive",
    "name",
    "priority",
    "id",
    "comment",
    "selective",
    "secondary_keys",
    "constant",
    "position",
)


def _entry(entry: LoreEntry, target: Target, backfill: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "keys": entry.keys,
        "content": strip_decorators(entry.content) if backfill else entry.content,
        "extensions": entry.extensions,
        "enabled": entry.enabled,
        "insertion_order": entry.insertion_order,
    }
    for key in _ENTRY_OPTIONAL:
        if getattr(entry, key) is not None:
            out[key] = getattr(entry, key)
    if target == "v3" and not backfill:
        out["use_regex"] = bool(entry.use_regex)
    elif entry.use_regex is not None and not backfill:
        out["use_regex"] = entry.use_regex
    for key, value in entry.extra.items():
        out.setdefault(key, value)
    return out


def _asset(asset: CardAsset) -> dict[str, Any]:
    out: dict[str, Any] = {"type": asset.type, "uri": asset.uri, "name": asset.name, "ext": asset.ext}
    for key, value in asset.extra.items():
        out.setdefault(key, value)
    return out


def strip_decorators(content: str) -> str:
    """Drop the V3 `@@decorator` lines that open an entry (the spec asks this of V2 backfills)."""
    lines = content.split("\n")
    start = 0
    while start < len(lines) and lines[start].startswith("@@"):
        start += 1
    return "\n".join(lines[start:]) if start else content


def card_to_record(card: CharacterCard) -> CardRecord:
    """A deep, JSON-safe copy of the card for the store, exactly as it is (no export changes)."""
    shaped = card_dict(card, "v3" if card.spec == "v3" else "v2", now=None)
    return {"schema": RECORD_SCHEMA, "spec": card.spec, "card": json.loads(json.dumps(shaped))}


def card_from_record(record: CardRecord) -> CharacterCard:
    """The card a `card_to_record` record holds.

    Raises:
        StoreCorruptError: the record is not a card record this Hearth wrote.
    """
    if not isinstance(record, dict) or record.get("spec") not in ("v1", "v2", "v3"):
        raise StoreCorruptError("A stored character is damaged (its record has no valid spec).")
    try:
        card, _warnings = card_from_json(copy.deepcopy(record["card"]))
    except (CardFormatError, KeyError) as err:
        raise StoreCorruptError(f"A stored character is damaged ({err}).") from None
    card.spec = record["spec"]
    return card
