"""The character editor's fields, to and from a card, losing nothing the editor does not show.

Every V2 field has a widget. The lorebook is a table, one row per entry; a row keeps
the unknown fields and extensions of the entry it came from (matched by position), so
editing a card from another app and exporting it again keeps what that app wrote.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from store import CardFormatError
from store.cards import CharacterBook, CharacterCard, LoreEntry
from ui.table_values import as_bool, split_keys, table_rows

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


def field_values(card: CharacterCard | None) -> list[Any]:
    """Widget values in the order of TEXT_FIELDS, then greetings, tags and the lore table."""
    card = card or CharacterCard()
    texts = [getattr(card, name) or "" for name in TEXT_FIELDS]
    greetings = [[g] for g in card.alternate_greetings]
    return [*texts, greetings, ", ".join(card.tags), loretable_rows(card.character_book)]


def loretable_rows(book: CharacterBook | None) -> list[list[Any]]:
    if book is None:
        return []
    return [
        [
            ", ".join(e.keys),
            ", ".join(e.secondary_keys or []),
            e.content,
            e.enabled,
            bool(e.constant),
            bool(e.selective),
            e.position or "after_char",
            e.insertion_order,
            e.priority if e.priority is not None else 0,
            bool(e.case_sensitive),
            bool(e.use_regex),
        ]  # fmt: skip
        for e in book.entries
    ]


def apply_fields(card: CharacterCard, values: list[Any]) -> CharacterCard:
    """The card with the editor's values in it.

    Raises:
        CardFormatError: the name is empty, or a lorebook row is malformed.
    """
    texts: dict[str, Any] = {name: str(value or "") for name, value in zip(TEXT_FIELDS, values, strict=False)}
    greetings_table, tags_text, lore_table = values[len(TEXT_FIELDS) :]
    if not texts["name"].strip():
        raise CardFormatError("A character needs a name.")
    nickname = texts.pop("nickname").strip() or None
    greetings = [str(row[0]) for row in table_rows(greetings_table) if row and str(row[0]).strip()]
    tags = [t.strip() for t in str(tags_text or "").split(",") if t.strip()]
    edited = replace(copy.deepcopy(card), **texts, alternate_greetings=greetings, tags=tags)
    edited.nickname = nickname if nickname or card.nickname is not None else None
    edited.character_book = _apply_lore(card.character_book, table_rows(lore_table))
    return edited


def _apply_lore(book: CharacterBook | None, rows: list[list[Any]]) -> CharacterBook | None:
    rows = [row for row in rows if any(str(cell).strip() for cell in row[:3])]
    if not rows:
        return None if book is None else replace(copy.deepcopy(book), entries=[])
    book = copy.deepcopy(book) if book is not None else CharacterBook()
    old = book.entries
    book.entries = [_entry(old[i] if i < len(old) else LoreEntry(), row, i) for i, row in enumerate(rows)]
    return book


def _entry(base: LoreEntry, row: list[Any], index: int) -> LoreEntry:
    if len(row) < len(LORE_COLUMNS):
        raise CardFormatError(f"Lorebook row {index + 1} is missing columns.")
    keys, secondary, content, enabled, constant, selective, position, order, priority, case, regex = row[
        : len(LORE_COLUMNS)
    ]
    position = str(position or "").strip() or "after_char"
    if position not in POSITIONS:
        raise CardFormatError(f"Lorebook row {index + 1}: position must be before_char or after_char.")
    return replace(
        base,
        keys=split_keys(keys),
        secondary_keys=split_keys(secondary) or (None if base.secondary_keys is None else []),
        content=str(content or ""),
        enabled=as_bool(enabled),
        constant=as_bool(constant),
        selective=as_bool(selective),
        position=position,
        insertion_order=_number(order, index, "insertion order"),
        priority=_number(priority, index, "priority"),
        case_sensitive=as_bool(case) if case or base.case_sensitive is not None else None,
        use_regex=as_bool(regex) if regex or base.use_regex is not None else None,
        id=base.id if base.id is not None else index,
    )


def _number(value: Any, index: int, what: str) -> int | float:
    try:
        number = float(value if value not in (None, "") else 0)
    except (TypeError, ValueError) as exc:
        raise CardFormatError(f"Lorebook row {index + 1}: {what} must be a number.") from exc
    return int(number) if number.is_integer() else number
