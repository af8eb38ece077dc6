"""Reading what gr.Dataframe hands back: rows, comma-separated keys, check boxes."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Row = TypeVar("Row")
Entry = TypeVar("Entry")


def table_rows(table: Any) -> list[list[Any]]:
    """Dataframe values arrive as a list of rows, a {"data": rows} dict, or a pandas DataFrame."""
    if table is None:
        return []
    if hasattr(table, "values") and hasattr(table, "columns"):
        return [list(row) for row in table.values.tolist()]
    if isinstance(table, dict) and "data" in table:
        return [list(row) for row in table["data"]]
    return [list(row) for row in table]


def split_keys(value: Any) -> list[str]:
    """ "a, b ,c" → ["a", "b", "c"]; empty parts are dropped."""
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def is_blank(value: Any) -> bool:
    """An empty cell: None, blank text, or the NaN (pandas NA) a DataFrame holds for one.
    A row added in the table arrives so, check boxes included: never ticked nor unticked."""
    if value is None or type(value).__name__ == "NAType":
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def as_bool(value: Any, blank: bool = False) -> bool:
    """A check-box cell: a bool, or its text form after an edit; `blank` for an empty cell
    (a new row's box, which the table shows neither ticked nor unticked)."""
    if is_blank(value):
        return blank
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def match_rows(
    rows: list[Row],
    entries: Sequence[Entry],
    shows: Callable[[Row, Entry], bool],
    related: Callable[[Row, Entry], bool],
) -> list[Entry | None]:
    """The stored entry each table row came from (None for a new row), so an entry keeps
    the hidden fields the table does not show when rows are added, deleted or edited.

    A row that shows an entry unchanged is that entry. Of the rest, in order, a row that
    shares something with a remaining entry (its keys or its content: `related`) is an
    edit of it, and a row still unpaired in the place of a remaining entry is an edit of
    several cells of that entry. Any other row is new; unpaired entries were deleted.
    """
    bases: list[int | None] = [None] * len(rows)
    unused = list(range(len(entries)))
    for test in (shows, related):
        for i, row in enumerate(rows):
            if bases[i] is None:
                match = next((j for j in unused if test(row, entries[j])), None)
                if match is not None:
                    unused.remove(match)
                    bases[i] = match
    for i in range(len(rows)):
        if bases[i] is None and i in unused:
            unused.remove(i)
            bases[i] = i
    return [entries[j] if j is not None else None for j in bases]
