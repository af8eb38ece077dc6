"""Chats: the session store and the chat file codecs (SillyTavern JSONL, text, text-generation-webui)."""

from store.chats.files import export_jsonl, export_text, import_chat
from store.chats.images import MAX_BYTES as MAX_PICTURE_BYTES
from store.chats.images import normalized_png
from store.chats.sessions import DEFAULT_TITLE, SessionStore

__all__ = [
    "DEFAULT_TITLE",
    "MAX_PICTURE_BYTES",
    "SessionStore",
    "export_jsonl",
    "export_text",
    "import_chat",
    "normalized_png",
]
