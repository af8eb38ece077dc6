"""The character editor's fields, to and from a card, losing nothing the editor does not show.

Every V2 field has a widget. The lorebook is a table, one row per entry; a row keeps
the unknown fields and extensions of the entry it came from (matched by position), so
editing a card from another app and exporting it again keeps what that app wrote.

A widget or cell that still shows what `field_values` put there keeps the card's own
value: a field the card left out (None) is shown as its default (priority 0, position
after_char, unchecked boxes) and stays left out, and text the editor would normalise
(keys or tags with commas, blank greetings, CRLF line ends) stays as it was. So saving
an unchanged card gives back exactly the same card.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from services.table_values import as_bool, is_blank, match_rows, split_keys, table_rows
from store.cards import CharacterBook, CharacterCard, LoreEntry
from store.errors import CardFormatError

TEXT_FIELDS = (
    "name", "nickname", "description", "personality", "scenario", "first_mes", "mes_example",
    "system_prompt", "post_history_instructions", "creator_notes", "creator", "character_version",
)  # fmt: skip
LORE_COLUMNS = [
    "Keys", "Secondary keys", "Content", "Enabled", "Constant", "Selective", "Position",
    "Insertion order", "Priority", "Case-sensitive", "Regex keys",
]  # fmt: skip
LORE_TYPES: Any = ["str", "str", "str", "bool", "bool", "bool", "str", "number", "number", "bool", "bool"]
POSITIONS = ("before_char", "after_char")
Number = int | float


def field_values(card: CharacterCard | None) -> list[Any]:
    """Widget values in the order of TEXT_FIELDS, then greetings, tags and the lore table."""
    card = card or CharacterCard()
    texts = [getattr(card, name) or "" for name in TEXT_FIELDS]
    greetings = [[g] for g in card.alternate_greetings]
    return [*texts, greetings, ", ".join(card.tags), loretable_rows(card.character_book)]


def loretable_rows(book: CharacterBook | None) -> list[list[Any]]:
    return [] if book is None else [_shown_row(entry) for entry in book.entries]


def _shown_row(e: LoreEntry) -> list[Any]:
    """An entry's cells; a field the entry leaves out shows the value the engine uses for it."""
    return [
        ", ".join(e.keys), ", ".join(e.secondary_keys or []), e.content, e.enabled, bool(e.constant),
        bool(e.selective), e.position or "after_char", e.insertion_order,
        e.priority if e.priority is not None else 0, bool(e.case_sensitive), bool(e.use_regex),
    ]  # fmt: skip


def apply_fields(card: CharacterCard, values: list[Any]) -> CharacterCard:
    """The card with the editor's values in it; unchanged widgets keep the card's exact values.

    Raises:
        CardFormatError: the name is empty, or a lorebook row is malformed.
    """
    shown = field_values(card)
    texts: dict[str, Any] = {}
    for name, value, before in zip(TEXT_FIELDS, values, shown, strict=False):
        if not _same_text(value, before):
            texts[name] = _text(value)
    greetings_table, tags_text, lore_table = values[len(TEXT_FIELDS) :]
    edited = replace(copy.deepcopy(card), **texts)
    if not edited.name.strip():
        raise CardFormatError("A character needs a name.")
    if "nickname" in texts:
        edited.nickname = texts["nickname"].strip() or (None if card.nickname is None else "")
    greetings = [_text(row[0]) if row else "" for row in table_rows(greetings_table)]
    if [_comparable(g) for g in greetings] != [_comparable(g) for g in card.alternate_greetings]:
        edited.alternate_greetings = [g for g in greetings if g.strip()]
    if not _same_text(tags_text, shown[len(TEXT_FIELDS) + 1]):
        edited.tags = split_keys(tags_text)
    edited.character_book = _apply_lore(card.character_book, table_rows(lore_table))
    return edited


def _apply_lore(book: CharacterBook | None, rows: list[list[Any]]) -> CharacterBook | None:
    """Each row edits the entry it came from (see `_bases`); a row whose keys and content
    are blank is left out (or deletes its entry)."""
    old = book.entries if book is not None else []
    fresh_id = 1 + max(
        (e.id for e in old if isinstance(e.id, int) and not isinstance(e.id, bool)), default=-1
    )
    entries = []
    for index, (row, base) in enumerate(zip(rows, _bases(old, rows), strict=True)):
        blank = not any(_text(cell).strip() for cell in row[:3])
        if blank and base is None:
            continue
        entry = _entry(base if base is not None else LoreEntry(id=fresh_id), row, index)
        if blank and entry != base:
            continue
        if base is None:
            fresh_id += 1
        entries.append(entry)
    if not entries and book is None:
        return None
    return replace(copy.deepcopy(book) if book is not None else CharacterBook(), entries=entries)


def _bases(old: list[LoreEntry], rows: list[list[Any]]) -> list[LoreEntry | None]:
    """The entry each row came from (None for a new row): see `match_rows`."""
    return match_rows(rows, old, _shows, _related)


def _related(row: list[Any], entry: LoreEntry) -> bool:
    """The row still has the entry's keys or its content: an edit of that entry."""
    keys = len(row) > 0 and _same_cell("str", row[0], _shown_row(entry)[0])
    content = len(row) > 2 and _same_cell("str", row[2], _shown_row(entry)[2])
    return keys or content


def _shows(row: list[Any], entry: LoreEntry) -> bool:
    cells = zip(LORE_TYPES, row, _shown_row(entry), strict=False)
    return len(row) >= len(LORE_COLUMNS) and all(
        _same_cell(kind, cell, before) for kind, cell, before in cells
    )


def _entry(base: LoreEntry, row: list[Any], index: int) -> LoreEntry:
    if len(row) < len(LORE_COLUMNS):
        raise CardFormatError(f"Lorebook row {index + 1} is missing columns.")
    changes: dict[str, Any] = {}
    cells = zip(_COLUMNS, LORE_COLUMNS, LORE_TYPES, row, _shown_row(base), strict=False)
    for (name, parse), column, kind, cell, before in cells:
        if _same_cell(kind, cell, before):
            continue
        try:
            changes[name] = parse(cell)
        except CardFormatError as err:
            raise CardFormatError(f"Lorebook row {index + 1}: {column} {err}") from err
    return replace(copy.deepcopy(base), **changes)


def _same_cell(kind: str, cell: Any, before: Any) -> bool:
    if kind == "bool":
        # A row added in the table has blank boxes: its entry keeps the defaults (enabled).
        return is_blank(cell) or _flag(cell) == _flag(before)
    if kind == "number":
        try:
            return _number(cell) == _number(before)
        except CardFormatError:
            return False
    return _same_text(cell, before)


def _same_text(value: Any, before: Any) -> bool:
    return _comparable(_text(value)) == _comparable(_text(before))


def _comparable(text: str) -> str:
    # A browser's text area may hand CRLF line ends back as LF; that alone is no edit.
    return text.replace("\r\n", "\n")


def _missing(value: Any) -> bool:
    """An empty cell: None, or the NaN (or pandas NA) a DataFrame holds for one."""
    return (
        value is None or type(value).__name__ == "NAType" or (isinstance(value, float) and math.isnan(value))
    )


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _flag(value: Any) -> bool:
    return False if _missing(value) else as_bool(value)


def _number(value: Any) -> Number | None:
    """A number cell; blank is None."""
    if _missing(value) or not str(value).strip():
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CardFormatError("must be a number.") from None
    if not math.isfinite(number):
        raise CardFormatError("must be a finite number.")
    return int(number) if number.is_integer() else number


def _order(value: Any) -> Number:
    number = _number(value)
    return 0 if number is None else number


def _position(value: Any) -> str | None:
    position = _text(value).strip()
    if position and position not in POSITIONS:
        raise CardFormatError("must be before_char or after_char.")
    return position or None


def _keys(value: Any) -> list[str]:
    return split_keys(_text(value))


# The entry field behind each column, and how a changed cell becomes that field's value.
_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("keys", _keys), ("secondary_keys", _keys), ("content", _text), ("enabled", _flag),
    ("constant", _flag), ("selective", _flag), ("position", _position), ("insertion_order", _order),
    ("priority", _number), ("case_sensitive", _flag), ("use_regex", _flag),
]  # fmt: skip
