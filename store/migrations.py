"""Schema versions of the data folder, and the migrations between them.

The version lives in `hearth.json`, table `meta`. Opening a data folder applies every
migration newer than its version, in order, then records the new version.

- Version 1: every chat lived in `hearth.json`, table `sessions`, one document per
  chat with its messages inline. Each new message rewrote the whole file.
- Version 2: chats are sharded into `sessions/<id>/` folders with paged messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.table import Document

from store.chats import SessionStore
from store.errors import SchemaTooNewError
from store.records import Message, Session, check_id

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
META_TABLE = "meta"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Path, TinyDB], None]


MIGRATIONS: list[Migration] = []


def migration(version: int) -> Callable[[Callable[[Path, TinyDB], None]], Callable[[Path, TinyDB], None]]:
    """Register a function that upgrades a data folder to `version`."""

    def register(fn: Callable[[Path, TinyDB], None]) -> Callable[[Path, TinyDB], None]:
        MIGRATIONS.append(Migration(version, fn.__name__, fn))
        return fn

    return register


def schema_version(db: TinyDB) -> int | None:
    docs = db.table(META_TABLE).all()
    return int(docs[0]["schema_version"]) if docs else None


def set_schema_version(db: TinyDB, version: int) -> None:
    # A single upsert of a fixed document is one atomic write.
    db.table(META_TABLE).upsert(Document({"schema_version": version}, doc_id=1))


def migrate(data_dir: Path, db: TinyDB, *, fresh: bool) -> list[str]:
    """Bring the data folder to `SCHEMA_VERSION`. Returns the migrations applied.

    Raises:
        SchemaTooNewError: the folder was written by a newer Hearth.
    """
    current = schema_version(db)
    if current is None:
        # No version recorded: a brand-new folder, or version 1 (which had chats inline).
        current = 1 if not fresh or "sessions" in db.tables() else SCHEMA_VERSION
    if current > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"{data_dir} was written by a newer Hearth (data version {current}; this Hearth "
            f"understands up to {SCHEMA_VERSION}). Update Hearth, or pick another --data-dir."
        )
    applied = []
    for step in sorted(MIGRATIONS, key=lambda m: m.version):
        if step.version > current:
            log.info("migrating %s to data version %d (%s)", data_dir, step.version, step.name)
            step.apply(data_dir, db)
            set_schema_version(db, step.version)
            applied.append(step.name)
    if schema_version(db) != SCHEMA_VERSION:
        set_schema_version(db, SCHEMA_VERSION)
    return applied


@migration(2)
def m002_shard_sessions(data_dir: Path, db: TinyDB) -> None:
    """Move inline chats out of `hearth.json` into per-chat folders.

    Each chat is written completely before the old table is dropped, and rewriting an
    existing folder is harmless, so a crash mid-way just repeats the work next start.
    """
    sessions = SessionStore(data_dir / "sessions")
    table = db.table("sessions")
    for doc in table.all():
        _move_session(sessions, dict(doc))
    db.drop_table("sessions")


def _move_session(sessions: SessionStore, doc: dict[str, Any]) -> None:
    created = float(doc.get("created", 0.0))
    session = Session(
        id=check_id(str(doc["id"])),
        title=str(doc.get("title") or "Imported chat"),
        created=created,
        updated=float(doc.get("updated", created)),
        format_id=str(doc.get("format", "")),
        sampler=dict(doc.get("sampler", {})),
        system_prompt=str(doc.get("system_prompt", "")),
    )
    messages = [
        Message(role=raw["role"], text=str(raw["text"]), created=float(raw.get("time", created)))
        for raw in doc.get("messages", [])
    ]
    sessions.restore(session, messages)
