"""Shared pieces of chat import and export: the result, the errors, limits and dates.

Chat files come from other programs and from strangers, so every value is checked
before it becomes a `Message`, and every limit is named here. Errors say which line
(JSONL) or which pair (text-generation-webui) is wrong, in words a user can act on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from store.errors import StoreError
from store.records import Message
from store.untrusted import MAX_JSON_DEPTH, Reader, check_tree

MAX_FILE_BYTES = 64 * 1024 * 1024
"""A whole chat file. A 10,000-message chat with swipes is a few MB."""
MAX_LINE_CHARS = 8 * 1024 * 1024
"""One JSONL line: a message with all its swipes and extras."""
MAX_MESSAGES = 200_000
MAX_TEXT_CHARS = 1_000_000
"""Any one text: a message, one swipe, a name."""
MAX_SWIPES = 1_000
"""Alternatives of one message."""

ChatSource = Literal["sillytavern", "textgen"]


class ChatFormatError(StoreError):
    """A chat file is invalid; nothing was imported."""


class ChatTooLargeError(ChatFormatError):
    """A chat file, line, message or text exceeds its limit; nothing was imported."""


@dataclass(frozen=True)
class ImportedChat:
    """A chat read from a file, ready to be stored with `SessionStore.restore`.

    `messages` have no `seq` yet. `session_extra` is what to keep in `Session.extra`
    so that an export writes the file's chat-level data back (SillyTavern's header and
    `chat_metadata`). Empty names mean the file did not say (text-generation-webui
    files never do): the caller chooses them.
    """

    source: ChatSource
    title: str
    user_name: str
    character_name: str
    created: float
    messages: list[Message]
    session_extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Notes:
    """Warnings gathered while importing, one line per kind however often it happened."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, int, str]] = {}

    def add(self, kind: str, where: str, text: str) -> None:
        """Note `text` (a sentence about `where`) unless this kind was already noted."""
        first_where, count, first_text = self._seen.get(kind, (where, 0, text))
        self._seen[kind] = (first_where, count + 1, first_text)

    def warnings(self) -> list[str]:
        lines = []
        for where, count, text in self._seen.values():
            more = f" ({count - 1:,} more like it)" if count > 1 else ""
            lines.append(f"{where}: {text}{more}")
        return lines


# ----- checked values -----

READ = Reader(
    ChatFormatError,
    ChatTooLargeError,
    wrong_type="{where} should be {expected}, but it is {kind}.",
    too_long="{where} is longer than {limit:,} characters.",
)


def text_at(value: Any, where: str) -> str:
    """`value` as message text: a string (null means empty) within the size limit."""
    return READ.text(value, where, MAX_TEXT_CHARS)


def flag_at(value: Any, where: str) -> bool:
    """`value` as true/false; JavaScript writers sometimes leave 0/1 or null."""
    return READ.flag(value, where, null=True, numbers=True)


def index_in(value: Any, length: int) -> int | None:
    """`value` if it is a whole number that indexes a list of `length`, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < length:
        return value
    return None


def object_at(value: Any, where: str) -> dict[str, Any]:
    return dict(READ.mapping(value, where))


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def checked_json(value: Any, raw: str, where: str) -> Any:
    """A decoded JSON value made safe to keep: not nested more than `MAX_JSON_DEPTH` levels
    deep (`extra` and `chat_metadata` are the deepest parts of real chats, ~4), and without
    lone UTF-16 surrogates.

    JSON may escape half of a surrogate pair (`"\\ud800"`); Python decodes it to a
    character UTF-8 cannot encode, so saving the chat would fail. It becomes U+FFFD.
    Only text that escapes a surrogate at all (`raw`) is searched.
    """
    too_deep = ChatFormatError(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep.")
    check_tree(value, too_deep=too_deep, leaves=False)
    return _replace_surrogates(value) if _SURROGATE_ESCAPE.search(raw) else value


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


# ----- dates -----

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTH_NUMBER = {m.lower(): i for i, m in enumerate(_MONTHS, 1)} | {
    m[:3].lower(): i for i, m in enumerate(_MONTHS, 1)
}
# SillyTavern 1.10+ display form: "June 19, 2023 2:20pm".
_MERIDIEM = re.compile(r"([A-Za-z]+)\.? (\d{1,2}), (\d{4}),? (\d{1,2}):(\d{2}) ?([ap]m)", re.IGNORECASE)
# SillyTavern's "humanized" forms: "2023-4-21 @20h 02m 47s 124ms", "2024-07-12@01h31m37s".
_HUMANIZED = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2}) ?@(\d{1,2})h ?(\d{1,2})m ?(\d{1,2})s(?: ?(\d{1,3})ms)?")
# text-generation-webui's metadata timestamps: "Jun 05, 2025 14:30".
_TEXTGEN = re.compile(r"([A-Za-z]{3}) (\d{1,2}), (\d{4}) (\d{1,2}):(\d{2})")
_LAST_MS = 253_402_300_799_999  # the end of year 9999


def parse_st_date(value: Any) -> float | None:
    """Epoch seconds from a SillyTavern `send_date`/`create_date`, or None if unreadable.

    Numbers are epoch milliseconds (TavernAI and early SillyTavern). The display and
    "humanized" strings carry no zone; SillyTavern wrote them from local time, so they
    are read as local time here (SillyTavern itself shows humanized ones as UTC).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int | float):
        return value / 1000 if math.isfinite(value) and 0 <= value <= _LAST_MS else None
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if match := _HUMANIZED.fullmatch(text):
        year, month, day, hour, minute, second, ms = match.groups()
        return _local(int(year), int(month), int(day), int(hour), int(minute), int(second), int(ms or 0))
    if match := _MERIDIEM.fullmatch(text):
        name, day, year, hour, minute, half = match.groups()
        hour24 = int(hour) % 12 + (12 if half.lower() == "pm" else 0)
        month = _MONTH_NUMBER.get(name.lower())
        return _local(int(year), month, int(day), hour24, int(minute)) if month else None
    return _iso(text)


def parse_textgen_time(value: Any) -> float | None:
    """Epoch seconds from a text-generation-webui timestamp ("Jun 05, 2025 14:30", local)."""
    if not isinstance(value, str) or not (match := _TEXTGEN.fullmatch(" ".join(value.split()))):
        return None
    name, day, year, hour, minute = match.groups()
    month = _MONTH_NUMBER.get(name.lower())
    return _local(int(year), month, int(day), int(hour), int(minute)) if month else None


def st_display_date(epoch: float) -> str:
    """SillyTavern's `send_date` form (moment's "MMMM D, YYYY h:mma"), in local time."""
    t = datetime.fromtimestamp(epoch)
    half = "am" if t.hour < 12 else "pm"
    return f"{_MONTHS[t.month - 1]} {t.day}, {t.year} {t.hour % 12 or 12}:{t.minute:02d}{half}"


def st_humanized_date(epoch: float) -> str:
    """SillyTavern's `create_date` form ("2024-07-12@01h31m37s"), in local time."""
    t = datetime.fromtimestamp(epoch)
    return f"{t.year}-{t.month:02d}-{t.day:02d}@{t.hour:02d}h{t.minute:02d}m{t.second:02d}s"


def _local(
    year: int, month: int, day: int, hour: int, minute: int, second: int = 0, ms: int = 0
) -> float | None:
    try:
        return datetime(year, month, day, hour, minute, second, ms * 1000).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _iso(text: str) -> float | None:
    """ISO 8601, as SillyTavern's own importers write (`new Date().toISOString()`)."""
    if not re.match(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        return None
