"""Persistence: TinyDB behind atomic writes, sharded so writes stay small."""

from store.atomic import AtomicJSONStorage, atomic_write_bytes
from store.characters import CharacterStore, CharacterSummary, StoredCharacter
from store.db import Store
from store.errors import (
    CardFormatError,
    NotFoundError,
    SchemaTooNewError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
)
from store.migrations import SCHEMA_VERSION
from store.personas import DEFAULT_PERSONA_NAME, Persona, PersonaStore
from store.records import Message, Session, check_id, new_id
from store.sessions import DEFAULT_TITLE, PAGE_SIZE, SessionStore
from store.story_store import StoredStory, StoryStore, StorySummary
from store.worlds import WorldBook, WorldBookStore, WorldBookSummary

__all__ = [
    "DEFAULT_PERSONA_NAME",
    "DEFAULT_TITLE",
    "CardFormatError",
    "CharacterStore",
    "CharacterSummary",
    "Persona",
    "PersonaStore",
    "StoredCharacter",
    "StoredStory",
    "StoryStore",
    "StorySummary",
    "WorldBook",
    "WorldBookStore",
    "WorldBookSummary",
    "PAGE_SIZE",
    "SCHEMA_VERSION",
    "AtomicJSONStorage",
    "Message",
    "NotFoundError",
    "SchemaTooNewError",
    "Session",
    "SessionStore",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "atomic_write_bytes",
    "check_id",
    "new_id",
]
