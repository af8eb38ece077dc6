"""Reading files from other programs and from strangers: strict JSON, bounded trees, typed fields.

Chat files (`store.chats`), story saves (`store.stories`) and character cards
(`store.cards`) are all read through this module, each with its own limits, errors and
wording:

    loads(text)                 strict JSON: NaN and Infinity are refused, as other apps cannot read them
    check_tree(value, ...)      refuse a parsed value nested too deeply or holding too many values
    Reader(...).text(raw, ...)  typed reads of one field, raising the format's own error

Each function raises the error it is given, so the format modules keep their own messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from store.errors import StoreError

MAX_JSON_DEPTH = 64
"""Nesting of a file's JSON, every format: real chats, saves and cards are under 10 deep."""
_SCALARS = (str, int, float, type(None))


def refuse_constant(name: str) -> NoReturn:
    """`parse_constant` for the JSON decoder: Python accepts NaN and Infinity, JSON does not."""
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=refuse_constant)


def loads(text: str) -> Any:
    """`json.loads(text)`, refusing NaN and Infinity too.

    Raises:
        json.JSONDecodeError: not JSON (a ValueError, with `lineno` and `colno`).
        ValueError: NaN, Infinity, or an integer too long to convert.
        RecursionError: nested too deeply for the decoder (thousands of levels).
    """
    if text.startswith("\ufeff"):  # as json.loads does; callers decode with utf-8-sig
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


def check_tree(
    value: Any,
    *,
    too_deep: StoreError,
    max_depth: int = MAX_JSON_DEPTH,
    too_many: StoreError | None = None,
    max_nodes: int = 0,
    leaves: bool = True,
    check: Callable[[Any], None] | None = None,
) -> None:
    """Refuse a parsed value deeper than `max_depth`, or, when `too_many` is given, with
    more than `max_nodes` values. Walks without recursing, so any depth is safe.

    The top value is at depth 1. With `leaves`, every value counts: the texts, numbers,
    true/false and nulls too. Without it only lists and objects do, which is faster (chats
    check every line, and bound nothing but depth). `check`, if given, sees each counted
    value before its children (cards use it to refuse what JSON cannot hold).

    Raises:
        `too_many`: past `max_nodes` values (checked first: the walk stops there).
        `too_deep`: a value more than `max_depth` levels down.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if too_many is not None and count > max_nodes:
            raise too_many
        if depth > max_depth:
            raise too_deep
        if check is not None:
            check(item)
        if isinstance(item, _SCALARS):  # the common case first: Mapping is a slower check
            continue
        if isinstance(item, dict | Mapping):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if leaves:
            stack.extend((child, depth + 1) for child in children)
        else:
            stack.extend((child, depth + 1) for child in children if not isinstance(child, _SCALARS))


def kind_of(value: Any, *, show_number: bool = False) -> str:
    """What a JSON value is, in words ("text", "a list", ...); `show_number` names a number's value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"the number {value}" if show_number else "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"


@dataclass(frozen=True)
class Reader:
    """Typed reads of the values in one format's files, raising that format's errors.

    `wrong_type` words a value of the wrong type from `{where}` (the field), `{expected}`
    ("text", "true or false", ...) and `{kind}` (what it is, see `kind_of`). `too_long`
    words a text over its limit from `{where}`, `{length}` and `{limit}`; `too_many` a list
    over its limit from `{where}`, `{count}` and `{limit}`. Both raise `too_large`.
    """

    error: type[StoreError]
    too_large: type[StoreError]
    wrong_type: str
    too_long: str
    too_many: str = "{where} has more than {limit:,} items."
    show_numbers: bool = False
    """Whether `{kind}` gives a number's value ("the number 5")."""

    def wrong(self, raw: Any, where: str, expected: str) -> StoreError:
        """The error for `raw` at `where` not being `expected`."""
        kind = kind_of(raw, show_number=self.show_numbers)
        return self.error(self.wrong_type.format(where=where, expected=expected, kind=kind))

    def text(self, raw: Any, where: str, limit: int | None) -> str:
        """A text of at most `limit` characters; null reads as ""."""
        if raw is None:
            return ""
        if not isinstance(raw, str):
            raise self.wrong(raw, where, "text")
        if limit is not None and len(raw) > limit:
            raise self.too_large(self.too_long.format(where=where, length=len(raw), limit=limit))
        return raw

    def flag(
        self, raw: Any, where: str, *, null: bool = False, numbers: bool = False, words: bool = False
    ) -> bool:
        """True or false; also null (as false) with `null`, `0`/`1` with `numbers`, and
        `"true"`/`"false"` with `words`, for formats whose writers spell it so."""
        if isinstance(raw, bool):
            return raw
        if null and raw is None:
            return False
        if numbers and raw in (0, 1) and not isinstance(raw, float):
            return bool(raw)
        if words and isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise self.wrong(raw, where, "true or false")

    def mapping(self, raw: Any, where: str) -> Mapping[str, Any]:
        """An object (names mapped to values), as it is."""
        if not isinstance(raw, Mapping):
            raise self.wrong(raw, where, "an object")
        return raw

    def items(self, raw: Any, where: str, limit: int | None = None) -> list[Any]:
        """A list of at most `limit` items, as it is."""
        if not isinstance(raw, list):
            raise self.wrong(raw, where, "a list")
        if limit is not None:
            self.check_count(len(raw), limit, where)
        return raw

    def check_count(self, count: int, limit: int, where: str) -> None:
        """Refuse `count` items at `where` if there are more than `limit`."""
        if count > limit:
            raise self.too_large(self.too_many.format(where=where, count=count, limit=limit))
