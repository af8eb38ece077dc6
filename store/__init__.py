"""Persistence: TinyDB behind atomic writes, sharded so writes stay small."""

from store.atomic import AtomicJSONStorage, atomic_write_bytes
from store.db import Store
from store.errors import (
    NotFoundError,
    SchemaTooNewError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
)
from store.migrations import SCHEMA_VERSION
from store.records import Message, Session, check_id, new_id
from store.sessions import DEFAULT_TITLE, PAGE_SIZE, SessionStore

__all__ = [
    "DEFAULT_TITLE",
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
