"""Reading untrusted Kobold save values: limits, lenient parsers, and original spellings.

Kobold Lite writes some numbers as strings (a `<select>` value: `"probability": "50"`,
`"wisearchdepth": "1024"`), KoboldAI writes keys as comma-joined text and United as
lists. The parsers accept every spelling a real save uses and raise `StoryFormatError`
naming the field for anything else. `restore` lets an export write a value back in the
spelling it was imported in, as long as the value did not change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from store.errors import StoryFormatError
from store.untrusted import Reader, check_tree, loads

T = TypeVar("T")

MAX_FILE_BYTES = 32 * 1024 * 1024
"""A whole save file. Lite saves with embedded images are a few MB; stories are far smaller."""
MAX_JSON_NODES = 2_000_000
"""Values in the save JSON, kept or not; bounds the memory a parsed file can take."""
MAX_CHUNKS = 100_000
MAX_TEXT_CHARS = 8_000_000
"""Any one text: the prompt, one action, memory, one world-info entry."""
MAX_WI_ENTRIES = 10_000
MAX_KEYS = 1_000
"""Keys of one kind (primary, secondary, anti) in one world-info entry."""

READ = Reader(
    StoryFormatError,
    StoryFormatError,
    wrong_type="The story file's {where} should be {expected}, not {kind}.",
    too_long="The story file's {where} is longer than {limit:,} characters.",
    too_many="The story file's {where} has more than {limit:,} items.",
    show_numbers=True,
)


def decode_json(data: bytes | str) -> Any:
    """Parse a save file's bytes, refusing anything too large to be a save."""
    size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if size > MAX_FILE_BYTES:
        raise StoryFormatError(
            f"The story file is {size // (1024 * 1024)} MB; story saves over "
            f"{MAX_FILE_BYTES // (1024 * 1024)} MB are not imported."
        )
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise StoryFormatError("The story file is not UTF-8 text, so it is not a Kobold save.") from exc
    try:
        obj = loads(data)
    except RecursionError as exc:
        raise StoryFormatError("The story file is nested too deeply to be a Kobold save.") from exc
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, numbers too long to convert
        raise StoryFormatError(f"The story file is not valid JSON: {exc}.") from exc
    return obj  # `import_story` checks its depth and size (`check_shape`)


def check_shape(obj: Any) -> None:
    """Refuse JSON deeper than `store.untrusted.MAX_JSON_DEPTH` (`savedsettings` is the
    deepest part of real saves, at ~5) or with more than `MAX_JSON_NODES` values."""
    check_tree(
        obj,
        too_deep=StoryFormatError("The story file is nested too deeply to be a Kobold save."),
        too_many=StoryFormatError("The story file holds too many values to be a Kobold save."),
        max_nodes=MAX_JSON_NODES,
    )


def as_text(raw: Any, where: str) -> str:
    """A text field; a missing value (null) reads as ""."""
    return READ.text(raw, where, MAX_TEXT_CHARS)


def as_flag(raw: Any, where: str) -> bool:
    """A true/false field; also `0`/`1` and `"true"`/`"false"`, which hand-edited saves use."""
    return READ.flag(raw, where, numbers=True, words=True)


def as_int(raw: Any, where: str, low: int, high: int) -> int:
    """A whole number in [low, high]; numeric text ("1024") and whole floats are accepted."""
    value: Any = raw
    if isinstance(raw, str):
        try:
            value = float(raw.strip()) if raw.strip() else None
        except ValueError:
            value = None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise READ.wrong(raw, where, "a whole number")
    if not low <= value <= high:
        raise StoryFormatError(f"The story file's {where} is {value}; it must be between {low} and {high}.")
    return value


def as_probability(raw: Any, where: str) -> int:
    """A world-info chance in percent. Lite writes `100` for an unset one, and reads a
    missing or empty value as 100; values above 100 act as 100 there, so they are clamped."""
    if raw is None or raw == "":
        return 100
    return min(as_int(raw, where, 0, 10**9), 100)


def as_keys(raw: Any, where: str) -> tuple[str, ...]:
    """World-info keys: comma-separated text (KoboldAI, Lite) or a list (United).

    Each key is stripped and empty ones are dropped: Lite would treat an empty key (from
    "a,,b") as matching every text, which no writer means.
    """
    if raw is None:
        return ()
    if isinstance(raw, str):
        parts = as_text(raw, where).split(",")
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        parts = [as_text(item, where) for item in raw]
    else:
        raise StoryFormatError(f"The story file's {where} should be text or a list of texts.")
    keys = tuple(key.strip() for key in parts if key.strip())
    if len(keys) > MAX_KEYS:
        raise StoryFormatError(f"The story file's {where} has more than {MAX_KEYS} keys.")
    return keys


def as_object(raw: Any, where: str) -> Mapping[str, Any]:
    return READ.mapping(raw, where)


def as_list(raw: Any, where: str, limit: int) -> list[Any]:
    return READ.items(raw, where, limit)


def restore(
    raw: Mapping[str, Any], key: str, value: T, parse: Callable[[Any, str], T], kind: type | None = None
) -> Any:
    """`raw[key]` if it still reads as `value` (and is a `kind`), else `value`.

    So an unchanged `"probability": "50"` is written back as `"50"`, not `50`.
    """
    if key not in raw or (kind is not None and not isinstance(raw[key], kind)):
        return value
    try:
        same = parse(raw[key], key) == value
    except StoryFormatError:
        same = False
    return raw[key] if same else value


def origin_of_action(text: str) -> Literal["user", "ai"]:
    """Saves do not say who wrote an action; a `>` line is the player's (adventure mode)."""
    return "user" if text.lstrip().startswith(">") else "ai"


def without(obj: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """A copy of `obj` without `keys` (the parts a story holds in its own fields)."""
    return {k: v for k, v in obj.items() if k not in keys}
