"""Reading what gr.Dataframe hands back: rows, comma-separated keys, check boxes."""

from __future__ import annotations

from typing import Any


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


def as_bool(value: Any) -> bool:
    """A check-box cell: a bool, or its text form after an edit."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)
