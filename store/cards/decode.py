"""Bytes to plain JSON values, within the limits, for every text a card can arrive in.

Messages here are lowercase fragments ("the chara chunk is not valid JSON"); the public
functions in `store.cards.formats` wrap them into one sentence that names the file.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
import sys
from typing import Any

import yaml

from store.cards.model import MAX_JSON_BYTES, MAX_JSON_NODES, MAX_YAML_BYTES, MAX_YAML_NODES
from store.errors import CardFormatError, CardTooLargeError
from store.untrusted import MAX_JSON_DEPTH, check_tree, loads

_LARGEST_FLOAT = int(sys.float_info.max)
# libyaml's parser where PyYAML was built with it (pure Python is 5-50 times slower).
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def size_text(n_bytes: int) -> str:
    """A byte count as people read it: "512 bytes", "3.4 MB"."""
    if n_bytes < 1024:
        return f"{n_bytes} bytes"
    if n_bytes < 1024 * 1024:
        return f"{n_bytes / 1024:.0f} KB"
    return f"{n_bytes / (1024 * 1024):.1f} MB"


def check_size(n_bytes: int, limit: int, what: str) -> None:
    """Raise `CardTooLargeError` when `what` is over `limit` bytes."""
    if n_bytes > limit:
        raise CardTooLargeError(f"{what} is {size_text(n_bytes)}; the limit is {size_text(limit)}")


def decode_base64(raw: bytes, what: str) -> bytes:
    """Strict base64, forgiving only line breaks and missing padding (both seen in real cards)."""
    compact = raw.translate(None, b" \t\r\n")
    compact += b"=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CardFormatError(f"{what} is not valid base64") from None


def load_json(raw: bytes, what: str) -> Any:
    """Parse UTF-8 JSON (a BOM is allowed) and check its shape with `check_plain`.

    Raises:
        CardTooLargeError: over `MAX_JSON_BYTES`, or more values than `MAX_JSON_NODES`.
        CardFormatError: not UTF-8, not JSON, nested too deeply, or not valid Unicode.
    """
    check_size(len(raw), MAX_JSON_BYTES, what)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CardFormatError(f"{what} is not UTF-8 text") from None
    try:
        value = loads(text)  # NaN and Infinity too are refused: no other app reads them back
    except RecursionError:
        raise CardFormatError(f"{what} is nested too deeply") from None
    except json.JSONDecodeError as err:
        raise CardFormatError(
            f"{what} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    except ValueError as err:  # NaN, or an integer with thousands of digits
        raise CardFormatError(f"{what} is not valid JSON ({err})") from None
    check_plain(value, what)
    return value


def load_yaml(text: str, what: str) -> Any:
    """Parse YAML with PyYAML's safe loader and return plain JSON values (dates become ISO text).

    The C loader (libyaml) is used where PyYAML has it. Values are counted before any is
    built, aliases as what they repeat, so a big file or an alias bomb fails fast. Aliases
    are expanded into independent copies, so no two fields share one object.

    Raises:
        CardTooLargeError: over `MAX_YAML_BYTES`, or more values than `MAX_YAML_NODES`.
        CardFormatError: not YAML, nested too deeply, or holding what JSON cannot.
    """
    check_size(len(text.encode("utf-8", "surrogatepass")), MAX_YAML_BYTES, what)
    try:
        _check_yaml_nodes(text, what)
        value = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except RecursionError:
        raise CardFormatError(f"{what} is nested too deeply") from None
    except yaml.MarkedYAMLError as err:
        where = f" (line {err.problem_mark.line + 1})" if err.problem_mark else ""
        raise CardFormatError(f"{what} is not valid YAML{where}") from None
    except (yaml.YAMLError, ValueError, OverflowError, TypeError, AttributeError, KeyError, IndexError):
        # What PyYAML's constructors let out for a bad tagged value: ValueError/OverflowError
        # for a date that is not one, AttributeError for `!!timestamp` on other text.
        raise CardFormatError(f"{what} is not valid YAML") from None
    check_plain(value, what, allow_dates=True)
    return _plain_copy(value)


def _check_yaml_nodes(text: str, what: str) -> None:
    """Count the values of a YAML text from its parse events, expanding aliases, and stop
    past `MAX_YAML_NODES`: parsing is fast (C), building the values is not.

    Raises:
        CardTooLargeError: too many values.
        CardFormatError: an alias to an unknown value, or to one it is inside of.
        yaml.YAMLError: not YAML.
    """
    sizes: dict[str, int] = {}  # anchor → how many values it stands for
    open_collections: list[tuple[str | None, int]] = []
    count = 0
    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor or "")
            if size is None:
                raise CardFormatError(f"{what} is not valid YAML (an alias names no finished value)")
            count += size
        elif isinstance(event, yaml.CollectionStartEvent):
            count += 1
            open_collections.append((event.anchor, count))
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = open_collections.pop()
            if anchor is not None:
                sizes[anchor] = count - start + 1
        elif isinstance(event, yaml.ScalarEvent):
            count += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        if count > MAX_YAML_NODES:
            raise CardTooLargeError(
                f"{what} holds more than {MAX_YAML_NODES:,} values, the limit for YAML "
                "(save a card this big as JSON or PNG)"
            )


def _plain_copy(value: Any) -> Any:
    # Depth is at most MAX_JSON_DEPTH here, so recursion is safe.
    if isinstance(value, dict):
        return {key: _plain_copy(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_plain_copy(child) for child in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def check_text(value: str, what: str) -> None:
    """Reject text with lone surrogates: JSON allows them, UTF-8 cannot encode them."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise CardFormatError(f"{what} holds text that is not valid Unicode") from None


def check_plain(value: Any, what: str, *, allow_dates: bool = False) -> None:
    """Check a parsed value is plain JSON of bounded depth and size, without recursing.

    Walking visits shared (YAML alias) objects once per reference, so the node limit
    also bounds what a later copy or `json.dumps` would produce.

    Raises:
        CardTooLargeError: more than `MAX_JSON_NODES` values.
        CardFormatError: deeper than `MAX_JSON_DEPTH`, a non-text key, a value JSON cannot
            hold, a number past what a float holds (other apps read it as infinity), or
            invalid Unicode.
    """

    def check(item: Any) -> None:
        if isinstance(item, str):
            check_text(item, what)
        elif isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    raise CardFormatError(f"{what} has a field name that is not text ({short(key)})")
                check_text(key, what)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise CardFormatError(f"{what} holds a number too large to store")
        elif isinstance(item, int) and not -_LARGEST_FLOAT <= item <= _LARGEST_FLOAT:
            raise CardFormatError(f"{what} holds a number too large to store")  # as 1e999 is
        elif not (
            item is None
            or isinstance(item, (bool, int, list))
            or (allow_dates and isinstance(item, datetime.date))
        ):
            raise CardFormatError(f"{what} holds a value that is not text, a number, a list or a mapping")

    check_tree(
        value,
        too_deep=CardFormatError(f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)"),
        too_many=CardTooLargeError(f"{what} holds more than {MAX_JSON_NODES:,} values"),
        max_nodes=MAX_JSON_NODES,
        check=check,
    )


def short(value: Any) -> str:
    """A value quoted for an error message, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def dump_json(value: Any, *, compact: bool) -> bytes:
    """The JSON bytes Hearth writes: UTF-8 with non-ASCII kept as is, as SillyTavern writes it.

    Compact inside PNG chunks (smaller), indented in files people may read.
    """
    if compact:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(value, ensure_ascii=False, indent=2)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # only possible for text set by code, never for imported text
        raise CardFormatError("the card holds text that is not valid Unicode") from None
