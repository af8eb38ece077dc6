"""Chat import and export: SillyTavern JSONL, plain text, text-generation-webui JSON.

    import_chat(data, filename) -> ImportedChat     any supported file, told apart by content
    export_jsonl(session, messages, ...) -> bytes   SillyTavern's chat file
    export_text(messages, ...) -> bytes             SillyTavern's plain-text export

Import is all or nothing: a bad file raises `ChatFormatError` (or `ChatTooLargeError`)
naming the line or pair and the problem, and returns no chat. How each format maps to
`Message` is described in `store.chats.sillytavern` and `store.chats.textgen`.
"""

from __future__ import annotations

import json
import time
from pathlib import PurePath
from typing import Any

from store.chats import sillytavern as chat_sillytavern
from store.chats import textgen as chat_textgen
from store.chats.parts import MAX_FILE_BYTES, ChatFormatError, ChatTooLargeError, ImportedChat, checked_json
from store.chats.sillytavern import NARRATOR_NAME, display_name, export_jsonl
from store.records import Message
from store.untrusted import loads

__all__ = [
    "ChatFormatError",
    "ChatTooLargeError",
    "ImportedChat",
    "export_jsonl",
    "export_text",
    "import_chat",
]

_SUPPORTED = (
    "Hearth imports SillyTavern chats (.jsonl) and text-generation-webui chat histories "
    '(.json with "internal" and "visible").'
)
_BINARY = {
    b"\x89PNG\r\n\x1a\n": "a PNG image (a character card?), not a chat; import a card as a character",
    b"PK\x03\x04": "a ZIP archive (a .charx card?), not a chat; import a card as a character",
    b"\xff\xd8\xff": "a JPEG image, not a chat",
    b"GGUF": "a GGUF model file, not a chat",
}


def import_chat(data: bytes, filename: str) -> ImportedChat:
    """Read a chat file's bytes. `filename` only suggests the title.

    Raises:
        ChatFormatError: the file is not a chat Hearth reads, or a line of it is invalid.
        ChatTooLargeError: the file, a line, a text or the message count is over its limit.
    """
    if len(data) > MAX_FILE_BYTES:
        raise ChatTooLargeError(
            f"The file is {len(data) / 2**20:.0f} MB; chat files over {MAX_FILE_BYTES // 2**20} MB "
            "are not imported."
        )
    for magic, what in _BINARY.items():
        if data.startswith(magic):
            raise ChatFormatError(f"This file is {what}.")
    text = _decode(data)
    if not text.strip():
        raise ChatFormatError("The file is empty: there is no chat in it.")
    title = _title(filename)
    now = time.time()
    first_number, first_line = next((n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip())
    if not first_line.lstrip().startswith(("{", "[")):
        raise ChatFormatError(f"Line {first_number} is not JSON, so this is not a chat file. {_SUPPORTED}")
    try:
        document = loads(text)
    except RecursionError as exc:
        raise ChatFormatError("The file is nested too deeply to be a chat.") from exc
    except ValueError as whole_error:  # not one JSON document: JSONL, or a broken JSON file
        if not _parses(first_line):
            raise _json_error(whole_error) from whole_error
        records = chat_sillytavern.parse_lines(text)
        return chat_sillytavern.read_records(records, title=title, now=now)
    return _from_document(checked_json(document, text, "The file"), title=title, now=now)


def export_text(messages: list[Message], *, user_name: str, character_name: str) -> bytes:
    """The chat as plain text, as SillyTavern exports it: "Name: message" blocks, each
    followed by a blank line. Hidden and empty messages are left out."""
    names = {"user": user_name, "assistant": character_name, "system": NARRATOR_NAME}
    blocks = [_text_block(display_name(m, names), m.text) for m in messages if not m.hidden and m.text]
    return "".join(blocks).encode("utf-8", "replace")


def _text_block(name: str, text: str) -> str:
    body = text.replace("\r\n", "\n")
    return f"{name}: {body}\n\n"


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ChatFormatError(f"Line {line} is not UTF-8 text, so this is not a chat file.") from exc


def _title(filename: str) -> str:
    """The file's name without its extension, unless it is just a number (TavernAI named
    chats by their creation time in milliseconds)."""
    stem = " ".join(PurePath(filename.replace("\\", "/")).stem.split())[:120]
    return "" if stem.isdigit() else stem


def _parses(line: str) -> bool:
    try:
        loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _json_error(exc: ValueError) -> ChatFormatError:
    if isinstance(exc, json.JSONDecodeError):
        return ChatFormatError(f"Line {exc.lineno} is not valid JSON ({exc.msg} at column {exc.colno}).")
    return ChatFormatError(f"The file is not valid JSON ({exc}).")


def _from_document(document: Any, *, title: str, now: float) -> ImportedChat:
    """A file that is one JSON value: a history, a one-line JSONL, or something else."""
    if isinstance(document, dict) and (
        str(document.get("spec", "")).startswith("chara_card")
        or any(key in document for key in ("first_mes", "char_name", "greeting"))
    ):
        raise ChatFormatError("This is a character card, not a chat; import it as a character.")
    if chat_textgen.looks_like_history(document):
        return chat_textgen.read_history(document, title=title, now=now)
    if chat_sillytavern.looks_like_line(document):
        return chat_sillytavern.read_records([(1, document)], title=title, now=now)
    if isinstance(document, dict) and ("savedsettings" in document or "actions" in document):
        raise ChatFormatError("This is a Kobold story save, not a chat; import it as a story.")
    raise ChatFormatError(f"This JSON is not a chat Hearth can read. {_SUPPORTED}")
