"""SillyTavern World Info files, converted to the card spec's `character_book` shape.

A World Info file is `{"entries": {"<uid>": entry}}` with SillyTavern's own field
names. The conversion mirrors the one SillyTavern performs when it writes a book into
a card: spec fields go where the spec puts them, SillyTavern's settings go under the
entry's `extensions` with the snake_case names SillyTavern uses there, and any other
field is kept under `extensions` by its own name, so nothing is lost.

The keys stay plain SillyTavern keys (`use_regex` is not set): SillyTavern matches
them as words or substrings, and only a key written `/pattern/flags` is a regex.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["world_info_to_character_book"]

# SillyTavern field → the name its card exporter gives it under `extensions`.
_EXTENSION_NAMES = {
    "position": "position",
    "excludeRecursion": "exclude_recursion",
    "displayIndex": "display_index",
    "probability": "probability",
    "useProbability": "useProbability",
    "depth": "depth",
    "selectiveLogic": "selectiveLogic",
    "group": "group",
    "groupOverride": "group_override",
    "groupWeight": "group_weight",
    "preventRecursion": "prevent_recursion",
    "delayUntilRecursion": "delay_until_recursion",
    "scanDepth": "scan_depth",
    "matchWholeWords": "match_whole_words",
    "useGroupScoring": "use_group_scoring",
    "caseSensitive": "case_sensitive",
    "automationId": "automation_id",
    "role": "role",
    "vectorized": "vectorized",
    "sticky": "sticky",
    "cooldown": "cooldown",
    "delay": "delay",
}
_SPEC_NAMES = (
    "uid",
    "key",
    "keysecondary",
    "comment",
    "content",
    "constant",
    "selective",
    "order",
    "disable",
)


def world_info_to_character_book(raw: Mapping[str, Any], *, name: str = "") -> dict[str, Any]:
    """A `character_book` object holding the World Info file's entries, in uid order.

    Entries that are not objects are left out; `Lorebook.from_dict` notes nothing for
    them because they carry no content to lose. Top-level fields other than `entries`
    go to the book's `extensions`.
    """
    entries_raw = raw.get("entries")
    items = list(entries_raw.values()) if isinstance(entries_raw, Mapping) else []
    if isinstance(entries_raw, list):
        items = list(entries_raw)
    entries = [_entry(item) for item in items if isinstance(item, Mapping)]
    entries.sort(
        key=lambda e: (_sort_number(e.get("extensions", {}).get("display_index")), _sort_number(e["id"]))
    )
    book_name = raw.get("name")
    return {
        "name": book_name if isinstance(book_name, str) and book_name else name,
        "extensions": {k: v for k, v in raw.items() if k not in ("entries", "name")},
        "entries": entries,
    }


def _entry(item: Mapping[str, Any]) -> dict[str, Any]:
    position = item.get("position", 1)
    extensions = {_EXTENSION_NAMES[k]: v for k, v in item.items() if k in _EXTENSION_NAMES}
    extensions.update({k: v for k, v in item.items() if k not in _EXTENSION_NAMES and k not in _SPEC_NAMES})
    return {
        "id": item.get("uid"),
        "keys": item.get("key", []),
        "secondary_keys": item.get("keysecondary", []),
        "comment": item.get("comment", ""),
        "content": item.get("content", ""),
        "constant": item.get("constant", False),
        "selective": item.get("selective", True),
        "insertion_order": item.get("order", 100),
        "enabled": not item.get("disable", False),
        "position": "before_char" if position == 0 else "after_char",
        "extensions": extensions,
    }


def _sort_number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("inf")
