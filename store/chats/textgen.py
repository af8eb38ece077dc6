"""text-generation-webui chat histories: `{"internal": [[user, reply], ...], "visible": [...]}`.

How a history becomes messages:

- Each pair gives a user message and an assistant reply; an empty side is skipped (a
  "dummy reply" or a reply never generated). A first pair whose user side is
  `<|BEGIN-VISIBLE-CHAT|>` means the character spoke first: it becomes one assistant
  greeting.
- The text is the `internal` side: what the model was given and wrote, raw. `visible`
  is the same text HTML-escaped, sometimes changed by output extensions (a translation,
  an audio player, an image tag). Hearth shows and prompts with one text, and raw text
  is what its Markdown rendering expects, so `visible` is only kept, unescaped, in
  `meta["textgen"]["visible"]` when it says something else. A file with only
  `visible` (or the legacy `data_visible`) is imported from it, unescaped.
- `metadata["user_N"/"assistant_N"]` gives the time (`timestamp`) and the versions
  (`versions`, `current_version_index`), which become swipes; the whole entry is kept
  in `meta["textgen"]["metadata"]`. Extra pair elements (tool calls, 2025+) are kept
  in `meta["textgen"]["pair_extra"]` of the pair's last message.
- The file names no one, so names are left empty for the caller to choose.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from store.chats.parts import (
    MAX_MESSAGES,
    MAX_SWIPES,
    ChatFormatError,
    ChatTooLargeError,
    ImportedChat,
    Notes,
    index_in,
    parse_textgen_time,
    text_at,
)
from store.records import Message, Role
from store.untrusted import kind_of

META_KEY = "textgen"
GREETING_MARKER = "<|BEGIN-VISIBLE-CHAT|>"
_OWN_KEYS = frozenset({"internal", "visible", "data", "data_visible", "metadata"})


def looks_like_history(value: Any) -> bool:
    """Whether a parsed JSON document is a text-generation-webui chat history."""
    return isinstance(value, Mapping) and any(
        isinstance(value.get(k), list) for k in ("internal", "visible", "data", "data_visible")
    )


def read_history(doc: Mapping[str, Any], *, title: str, now: float) -> ImportedChat:
    """Build the chat from a parsed history (see `looks_like_history`), already passed
    through `checked_json`."""
    internal_name = "internal" if "internal" in doc else "data"
    visible_name = "visible" if "visible" in doc else "data_visible"
    internal = _pairs(doc.get(internal_name), internal_name)
    visible = _pairs(doc.get(visible_name), visible_name)
    metadata = doc.get("metadata")
    notes = Notes()
    if metadata is not None and not isinstance(metadata, Mapping):
        notes.add(
            "metadata", '"metadata"', f"it should be an object but is {kind_of(metadata)}; it was ignored."
        )
        metadata = None
    if internal is not None and visible is not None and len(internal) != len(visible):
        notes.add("length", "The chat history", f'"{internal_name}" and "{visible_name}" differ in length.')
    messages: list[Message] = []
    for row in range(max(len(internal or []), len(visible or []))):
        pair = internal[row] if internal is not None and row < len(internal) else None
        shown = visible[row] if visible is not None and row < len(visible) else None
        found = _pair_messages(row, pair, shown, metadata or {}, notes, now)
        if len(messages) + len(found) > MAX_MESSAGES:
            raise ChatTooLargeError(f"Pair {row + 1}: the chat has more than {MAX_MESSAGES:,} messages.")
        messages.extend(found)
    kept = {k: v for k, v in doc.items() if k not in _OWN_KEYS}
    return ImportedChat(
        source="textgen",
        title=title or "Imported chat",
        user_name="",
        character_name="",
        created=messages[0].created if messages else now,
        messages=messages,
        session_extra={META_KEY: kept} if kept else {},
        warnings=notes.warnings() + ([] if messages else ["The chat has no messages."]),
    )


def _pairs(value: Any, name: str) -> list[list[Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ChatFormatError(
            f'"{name}" should be a list of [user, reply] pairs, but it is {kind_of(value)}.'
        )
    if len(value) > MAX_MESSAGES:
        raise ChatTooLargeError(f'"{name}" has more than {MAX_MESSAGES:,} pairs.')
    for row, pair in enumerate(value, 1):
        if not isinstance(pair, list) or len(pair) < 2:
            raise ChatFormatError(f'Pair {row} of "{name}" should be a [user, reply] list, but it is not.')
        for side, label in ((0, "user message"), (1, "reply")):
            text_at(pair[side], f'Pair {row} of "{name}": the {label}')
    return value


def _pair_messages(
    row: int,
    pair: list[Any] | None,
    shown: list[Any] | None,
    metadata: Mapping[str, Any],
    notes: Notes,
    now: float,
) -> list[Message]:
    found = []
    sides: tuple[tuple[int, Role], ...] = ((0, "user"), (1, "assistant"))
    for side, role in sides:
        raw = pair[side] if pair is not None else None
        view = html.unescape(shown[side] or "") if shown is not None else None
        text = raw if raw is not None else view or ""
        if not text or (side == 0 and text == GREETING_MARKER):
            continue
        kept: dict[str, Any] = {}
        if view is not None and view != text:
            kept["visible"] = view
        entry = metadata.get(f"{role}_{row}")
        if isinstance(entry, Mapping):
            kept["metadata"] = dict(entry)
        found.append(_message(role, text, kept, f"Pair {row + 1}", notes, now))
    if found and pair is not None and len(pair) > 2:
        last = found[-1]
        last.meta[META_KEY] = {**last.meta.get(META_KEY, {}), "pair_extra": pair[2:]}
    return found


def _message(role: Role, text: str, kept: dict[str, Any], where: str, notes: Notes, now: float) -> Message:
    entry = kept.get("metadata", {})
    stamp = entry.get("timestamp")
    created = parse_textgen_time(stamp)
    if created is None:
        created = now
        if stamp not in (None, ""):
            notes.add("date", where, "the time could not be read, so the import time was used.")
    swipes, index = _versions(entry, text, where, notes)
    return Message(
        role=role,
        text=text,
        created=created,
        swipes=swipes,
        swipe_index=index,
        meta={META_KEY: kept} if kept else {},
    )


def _versions(entry: Mapping[str, Any], text: str, where: str, notes: Notes) -> tuple[tuple[str, ...], int]:
    """A message's versions (regenerations, edits) as swipes, the current one selected."""
    versions = entry.get("versions")
    if not isinstance(versions, list) or not versions:
        return (), 0
    if len(versions) > MAX_SWIPES:
        raise ChatTooLargeError(f"{where} has more than {MAX_SWIPES:,} versions.")
    swipes = []
    for number, version in enumerate(versions, 1):
        content = version.get("content") if isinstance(version, Mapping) else None
        if not isinstance(content, str):
            notes.add("versions", where, "a version has no text, so the versions were not imported.")
            return (), 0
        swipes.append(text_at(content, f"{where}: version {number}"))
    index = index_in(entry.get("current_version_index"), len(swipes))
    if index is None:
        index = len(swipes) - 1
    swipes[index] = text  # the pair's text is what was shown and prompted
    return tuple(swipes), index
