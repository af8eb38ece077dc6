"""SillyTavern chat JSONL: read every shape SillyTavern and TavernAI wrote, write today's.

A file is an optional header line (`user_name`, `character_name`, `create_date`,
`chat_metadata`) and then one message per line. How a line becomes a `Message`:

- `mes` is the text; `swipes` + `swipe_id` become `swipes` + `swipe_index`. If the
  selected swipe differs from `mes`, `mes` wins and replaces it (SillyTavern syncs them
  the same way before a swipe). Chub's `{"message": ...}` swipe objects are flattened.
- `is_user` gives the role `user`; `extra.type == "narrator"` (the `/sys` command)
  gives `system`; anything else is `assistant`. `is_system` (hidden with `/hide`) is
  `hidden`, whatever the role.
- `send_date` (epoch ms, a display string or a "humanized" string) becomes `created`;
  an unreadable one gets the import time and a warning.
- Every other key (`extra`, `swipe_info`, `is_name`, `gen_started`, `force_avatar`,
  the original `send_date`, ...) is kept verbatim in `meta["sillytavern"]` and written
  back on export, so a round trip loses nothing.

Export writes the header (keeping an imported `create_date`, `chat_metadata` and any
other header key from `Session.extra["sillytavern"]`) and one line per message, the
`send_date` as SillyTavern displays it unless the imported spelling still holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from store.chats.parts import (
    MAX_LINE_CHARS,
    MAX_MESSAGES,
    MAX_SWIPES,
    ChatFormatError,
    ChatTooLargeError,
    ImportedChat,
    Notes,
    checked_json,
    flag_at,
    index_in,
    object_at,
    parse_st_date,
    st_display_date,
    st_humanized_date,
    text_at,
)
from store.records import Message, Role, Session
from store.untrusted import kind_of, loads

META_KEY = "sillytavern"
"""Where a message's and a session's kept SillyTavern data live (`meta`, `extra`)."""
NARRATOR_NAME = "System"  # SillyTavern's default narrator name
_MODELLED = frozenset({"name", "is_user", "is_system", "mes", "swipes", "swipe_id"})
_HEADER_KEYS = ("user_name", "character_name", "create_date", "chat_metadata")
_HEADER_OWN = frozenset({"user_name", "character_name", "chat_metadata"})


# ----- import -----


def parse_lines(text: str) -> Iterator[tuple[int, Any]]:
    """Each non-blank line's number and parsed JSON.

    Lines are split on "\\n" only: JSON text may hold U+2028 and other characters that
    `str.splitlines` would break a line on.
    """
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if len(line) > MAX_LINE_CHARS:
            raise ChatTooLargeError(f"Line {number} is longer than {MAX_LINE_CHARS:,} characters.")
        try:
            value = loads(line)
        except RecursionError as exc:
            raise ChatFormatError(f"Line {number} is nested too deeply to be a chat message.") from exc
        except json.JSONDecodeError as exc:
            raise ChatFormatError(
                f"Line {number} is not valid JSON ({exc.msg} at column {exc.colno})."
            ) from exc
        except ValueError as exc:  # NaN, or a number too long to convert
            raise ChatFormatError(f"Line {number} is not valid JSON ({exc}).") from exc
        yield number, checked_json(value, line, f"Line {number}")


def looks_like_line(value: Any) -> bool:
    """Whether a parsed JSON value is a SillyTavern header or message."""
    return isinstance(value, Mapping) and any(k in value for k in ("mes", *_HEADER_KEYS))


def read_records(records: Iterable[tuple[int, Any]], *, title: str, now: float) -> ImportedChat:
    """Build the chat from numbered lines, parsed and checked (see `parse_lines`)."""
    notes = Notes()
    header: dict[str, Any] | None = None
    messages: list[Message] = []
    for number, value in records:
        where = f"Line {number}"
        if not isinstance(value, Mapping):
            raise ChatFormatError(f"{where} should be a JSON object (a message), but it is {kind_of(value)}.")
        if header is None and not messages and _is_header(value):
            header = _read_header(value, where)
            continue
        if len(messages) >= MAX_MESSAGES:
            raise ChatTooLargeError(f"{where}: the chat has more than {MAX_MESSAGES:,} messages.")
        messages.append(_read_message(value, where, notes, now))
    return _chat(header or {}, messages, title=title, notes=notes, now=now)


def _is_header(value: Mapping[str, Any]) -> bool:
    # Old files and Chub exports spell the header differently; SillyTavern accepts any
    # first line with one of these keys and no message text.
    return "mes" not in value and "is_user" not in value and any(k in value for k in (*_HEADER_KEYS, "name"))


def _read_header(value: Mapping[str, Any], where: str) -> dict[str, Any]:
    header = dict(value)
    for key in ("user_name", "character_name"):
        header[key] = text_at(header.get(key), f'{where}: "{key}"')
    if "chat_metadata" in header:
        header["chat_metadata"] = object_at(header["chat_metadata"], f'{where}: "chat_metadata"')
    return header


def _read_message(value: Mapping[str, Any], where: str, notes: Notes, now: float) -> Message:
    if "mes" not in value:
        raise ChatFormatError(f'{where} is not a chat message: it has no message text ("mes").')
    text = text_at(_flatten_chub(value["mes"]), f'{where}: the message text ("mes")')
    kept = {k: v for k, v in value.items() if k not in _MODELLED}
    extra = object_at(kept["extra"], f'{where}: "extra"') if kept.get("extra") is not None else {}
    is_user = flag_at(value.get("is_user"), f'{where}: "is_user"')
    role: Role = "user" if is_user else "system" if extra.get("type") == "narrator" else "assistant"
    swipes, index, text = _read_swipes(value, text, where, notes)
    created = parse_st_date(value.get("send_date"))
    if created is None:
        created = now
        if value.get("send_date") not in (None, ""):
            notes.add("date", where, "the date could not be read, so the import time was used.")
    return Message(
        role=role,
        text=text,
        created=created,
        name=text_at(value.get("name"), f'{where}: "name"'),
        swipes=swipes,
        swipe_index=index,
        hidden=flag_at(value.get("is_system"), f'{where}: "is_system"'),
        meta={META_KEY: kept} if kept else {},
    )


def _flatten_chub(value: Any) -> Any:
    """Chub's chat export wraps texts as `{"message": text, ...}`."""
    if isinstance(value, Mapping) and isinstance(value.get("message"), str):
        return value["message"]
    return value


def _read_swipes(
    value: Mapping[str, Any], text: str, where: str, notes: Notes
) -> tuple[tuple[str, ...], int, str]:
    raw = value.get("swipes")
    if raw is None:
        return (), 0, text
    if not isinstance(raw, list):
        raise ChatFormatError(f'{where}: "swipes" should be a list of texts, but it is {kind_of(raw)}.')
    if len(raw) > MAX_SWIPES:
        raise ChatTooLargeError(f"{where} has more than {MAX_SWIPES:,} swipes.")
    swipes = [text_at(_flatten_chub(s), f"{where}: swipe {i + 1}") for i, s in enumerate(raw)]
    if not swipes:
        return (), 0, text
    chosen = value.get("swipe_id")
    index = index_in(chosen, len(swipes))
    if index is None:
        if chosen is not None:
            notes.add("swipe", where, "the selected swipe does not exist, so the one shown was selected.")
        if text in swipes:
            index = swipes.index(text)
        else:
            swipes.append(text)
            index = len(swipes) - 1
    swipes[index] = text  # `mes` is what SillyTavern shows and sends
    return tuple(swipes), index, text


def _chat(
    header: dict[str, Any], messages: list[Message], *, title: str, notes: Notes, now: float
) -> ImportedChat:
    user_name = _header_name(header, "user_name") or _first_name(messages, "user")
    character_name = _header_name(header, "character_name") or _first_name(messages, "assistant")
    created = parse_st_date(header.get("create_date"))
    if created is None:
        created = messages[0].created if messages else now
    kept: dict[str, Any] = {}
    if header:
        kept = {"header": {k: v for k, v in header.items() if k not in _HEADER_OWN}}
        if "chat_metadata" in header:
            kept["chat_metadata"] = header["chat_metadata"]
    return ImportedChat(
        source="sillytavern",
        title=title or _default_title(character_name, created),
        user_name=user_name,
        character_name=character_name,
        created=created,
        messages=messages,
        session_extra={META_KEY: kept} if kept else {},
        warnings=notes.warnings() + ([] if messages else ["The chat has no messages."]),
    )


def _header_name(header: Mapping[str, Any], key: str) -> str:
    # SillyTavern's importers of other formats write "unused" and take names from messages.
    name = str(header.get(key) or "")
    return "" if name == "unused" else name


def _first_name(messages: list[Message], role: Role) -> str:
    return next((m.name for m in messages if m.role == role and m.name), "")


def _default_title(character_name: str, created: float) -> str:
    when = st_display_date(created)
    return f"{character_name} - {when}" if character_name else f"Chat - {when}"


# ----- export -----


def export_jsonl(session: Session, messages: list[Message], *, user_name: str, character_name: str) -> bytes:
    """The chat as a SillyTavern JSONL file (UTF-8, one JSON object per line)."""
    kept = _kept(session.extra)
    kept_header = _kept({META_KEY: kept.get("header")})
    header: dict[str, Any] = {
        "user_name": user_name,
        "character_name": character_name,
        "create_date": kept_header.get("create_date", st_humanized_date(session.created)),
    }
    header.update({k: v for k, v in kept_header.items() if k not in header and k not in _HEADER_OWN})
    metadata = kept.get("chat_metadata")
    header["chat_metadata"] = dict(metadata) if isinstance(metadata, Mapping) else {}
    names = {"user": user_name, "assistant": character_name, "system": NARRATOR_NAME}
    lines = [header, *(_line(m, names) for m in messages)]
    text = "\n".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) for line in lines)
    # A lone surrogate cannot be UTF-8; written as its JSON escape, the file stays valid.
    return text.encode("utf-8", "backslashreplace")


def display_name(message: Message, names: Mapping[str, str]) -> str:
    """The message's own name, else the name for its role."""
    return message.name or names[message.role]


def _kept(holder: Mapping[str, Any]) -> dict[str, Any]:
    kept = holder.get(META_KEY)
    return dict(kept) if isinstance(kept, Mapping) else {}


def _line(message: Message, names: Mapping[str, str]) -> dict[str, Any]:
    kept = _kept(message.meta)
    send_date = _send_date(message, kept.get("send_date"))
    line: dict[str, Any] = {
        "name": display_name(message, names),
        "is_user": message.role == "user",
        "is_system": message.hidden,
        "send_date": send_date,
        "mes": message.text,
    }
    line.update({k: v for k, v in kept.items() if k not in line and k != "swipe_info"})
    extra = dict(line["extra"]) if isinstance(line.get("extra"), Mapping) else {}
    if message.role == "system":
        extra.setdefault("type", "narrator")
    model = message.meta.get("model")
    if isinstance(model, str) and model:
        extra.setdefault("model", model)
    line["extra"] = extra
    if message.swipes:
        line["swipes"] = list(message.swipes)
        line["swipe_id"] = message.swipe_index
        line["swipe_info"] = _swipe_info(kept.get("swipe_info"), len(message.swipes), send_date)
    return line


def _send_date(message: Message, original: Any) -> Any:
    """The imported spelling while it still says when the message was sent."""
    parsed = parse_st_date(original)
    if parsed is not None and abs(parsed - message.created) < 0.001:
        return original
    return st_display_date(message.created)


def _swipe_info(kept: Any, count: int, send_date: Any) -> list[Any]:
    """One entry per swipe: the imported ones, then fresh ones for swipes added since."""
    info = list(kept) if isinstance(kept, list) else []
    info = info[:count]
    info.extend({"send_date": send_date, "extra": {}} for _ in range(count - len(info)))
    return info
