"""Memory, the author's note and world info (story cards) as the steering panel shows them.

The values go to and from a `Story`; a world-info row keeps the group and unknown
fields of the entry it came from, so a Kobold save edited here and exported again
keeps what Kobold wrote. Rows are matched to entries by position while their number
stays the same (an edit), and by their values when a row was added or removed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from services.table_values import as_bool, match_rows, split_keys, table_rows
from store.errors import InvalidInputError
from store.stories import DEPTH_UNITS, Story, WorldInfoEntry


def values(story: Story) -> list[Any]:
    """Widget values in the order of `SteeringWidgets.inputs`."""
    rows = [
        [
            ", ".join(e.keys),
            ", ".join(e.secondary_keys),
            ", ".join(e.anti_keys),
            e.content,
            e.comment,
            e.constant,
            e.probability,
            e.enabled,
        ]  # fmt: skip
        for e in story.world_info
    ]
    return [
        story.memory, story.authors_note, story.authors_note_template, story.authors_note_depth,
        story.authors_note_unit, rows, story.wi_placement, story.wi_search_depth,
    ]  # fmt: skip


def apply(story: Story, widget_values: list[Any]) -> Story:
    """`story` with the panel's values in it.

    Raises:
        InvalidInputError: a depth or a probability is not a number in range.
    """
    memory, note, template, depth, unit, table, placement, search_depth = widget_values
    rows = [r for r in table_rows(table) if any(str(cell or "").strip() for cell in r)]
    bases = _bases(story.world_info, rows)
    entries = tuple(
        _entry(base or WorldInfoEntry(), row, i)
        for i, (base, row) in enumerate(zip(bases, rows, strict=True))
    )
    return replace(
        story,
        memory=str(memory or ""),
        authors_note=str(note or ""),
        authors_note_template=str(template or ""),
        authors_note_depth=_count(depth, "The note depth"),
        authors_note_unit=unit if unit in DEPTH_UNITS else "characters",
        world_info=entries,
        wi_placement="before_authors_note" if placement == "before_authors_note" else "after_memory",
        wi_search_depth=_count(search_depth, "The scan depth"),
    )


def _bases(stored: tuple[WorldInfoEntry, ...], rows: list[list[Any]]) -> list[WorldInfoEntry | None]:
    """The stored entry each row came from (None for a new row): see `match_rows`."""
    shown = [_shown(_entry(WorldInfoEntry(), row, i)) for i, row in enumerate(rows)]
    return match_rows(
        shown,
        stored,
        lambda cells, entry: cells == _shown(entry),
        lambda cells, entry: cells[0] == entry.keys or cells[3] == entry.content,  # same keys or content
    )


def _shown(entry: WorldInfoEntry) -> tuple[Any, ...]:
    """What a row of the table shows of an entry."""
    return (
        entry.keys, entry.secondary_keys, entry.anti_keys, entry.content, entry.comment,
        entry.constant, entry.probability, entry.enabled,
    )  # fmt: skip


def _entry(base: WorldInfoEntry, row: list[Any], index: int) -> WorldInfoEntry:
    keys, secondary, anti, content, comment, constant, probability, enabled = (row + [None] * 8)[:8]
    secondary_keys, anti_keys = tuple(split_keys(secondary)), tuple(split_keys(anti))
    chance = _count(probability if probability not in (None, "") else 100, f"Entry {index + 1}'s probability")
    if chance > 100:
        raise InvalidInputError(f"Entry {index + 1}'s probability must be between 0 and 100.")
    return replace(
        base,
        keys=tuple(split_keys(keys)),
        secondary_keys=secondary_keys,
        anti_keys=anti_keys,
        content=str(content or ""),
        comment=str(comment or ""),
        # An imported entry may hold secondary keys it does not use; only a change to them
        # here turns selection on or off.
        selective=(
            bool(secondary_keys or anti_keys)
            if (secondary_keys, anti_keys) != (base.secondary_keys, base.anti_keys)
            else base.selective
        ),
        constant=as_bool(constant),
        probability=chance,
        enabled=as_bool(enabled, blank=True),  # a row added in the table is on until unticked
    )


def _count(value: Any, what: str) -> int:
    try:
        number = float(value if value not in (None, "") else 0)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be a whole number.") from exc
    if number < 0 or not number.is_integer():
        raise InvalidInputError(f"{what} must be a whole number, 0 or more.")
    return int(number)
