"""Personas: who the user is in a chat (a name and a description the prompt can use).

    <data dir>/personas.json        TinyDB: table `personas` (one document each) and
                                    table `settings` (which persona is the default)
    <data dir>/personas/<id>.png    avatars, under generated names only

Personas live in their own small file rather than in `hearth.json`: they are written
whenever the user edits one, and a separate file keeps those writes (and any damage)
away from settings and presets, and lets this store open without the `Store` root.

There is always at least one persona. A fresh folder gets "User" with an empty
description as the default, and the last persona cannot be deleted. A chat locked to
a persona that was deleted since falls back to the default (`resolve`).
"""

from __future__ import annotations

import builtins
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from tinydb import Query, TinyDB

from store.atomic import AtomicJSONStorage, atomic_write_bytes
from store.cards import avatar_picture
from store.errors import NotFoundError, SchemaTooNewError, StoreCorruptError, StoreError
from store.records import check_id, new_id

PERSONA_SCHEMA = 1
DEFAULT_PERSONA_NAME = "User"
MAX_NAME_CHARS = 100
MAX_DESCRIPTION_CHARS = 100_000
PERSONAS_FILE = "personas.json"
AVATARS_DIR = "personas"
_PERSONAS = "personas"
_SETTINGS = "settings"
_DEFAULT_KEY = "default"
_NOT_FOUND = "That persona no longer exists."


class PersonaDict(TypedDict):
    """One document in the `personas` table."""

    schema: int
    id: str
    name: str
    description: str
    has_avatar: bool


@dataclass(frozen=True)
class Persona:
    """The user's side of a chat: `{{user}}` is the name, the description goes in the prompt."""

    id: str
    name: str
    description: str = ""
    has_avatar: bool = False

    def to_dict(self) -> PersonaDict:
        return {
            "schema": PERSONA_SCHEMA,
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "has_avatar": self.has_avatar,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Persona:
        """Raises StoreCorruptError for a damaged record, SchemaTooNewError for a newer one."""
        schema = raw.get("schema")
        if isinstance(schema, int) and schema > PERSONA_SCHEMA:
            raise SchemaTooNewError("A persona was saved by a newer Hearth; update Hearth to use it.")
        fields = (raw.get("id"), raw.get("name"), raw.get("description"), raw.get("has_avatar"))
        if not (
            isinstance(schema, int)
            and isinstance(fields[0], str)
            and isinstance(fields[1], str)
            and isinstance(fields[2], str)
            and isinstance(fields[3], bool)
        ):
            raise StoreCorruptError("A stored persona is damaged (its record is not valid).")
        return cls(id=check_id(fields[0]), name=fields[1], description=fields[2], has_avatar=fields[3])


class PersonaStore:
    """Create, list, edit and delete personas, and choose the default one."""

    def __init__(self, data_dir: Path) -> None:
        self.avatars_dir = data_dir / AVATARS_DIR
        self.avatars_dir.mkdir(parents=True, exist_ok=True)
        self._db = TinyDB(data_dir / PERSONAS_FILE, storage=AtomicJSONStorage)
        self._lock = threading.RLock()
        with self._lock:
            if not self.list():
                self.set_default(self.create(DEFAULT_PERSONA_NAME).id)

    # -- reading -----------------------------------------------------------------

    def list(self) -> builtins.list[Persona]:
        """Every persona, by name (ignoring case). A damaged record is left out, not fatal."""
        found: builtins.list[Persona] = []
        for doc in self._db.table(_PERSONAS).all():
            try:
                found.append(Persona.from_dict(dict(doc)))
            except StoreError:
                continue
        return sorted(found, key=lambda p: (p.name.casefold(), p.id))

    def get(self, persona_id: str) -> Persona:
        """Raises NotFoundError if there is no such persona."""
        doc = self._db.table(_PERSONAS).get(Query().id == check_id(persona_id))
        if doc is None or isinstance(doc, builtins.list):
            raise NotFoundError(_NOT_FOUND)
        return Persona.from_dict(dict(doc))

    def default_id(self) -> str:
        """The default persona's id; if that one is gone, the first persona by name."""
        stored = self._db.table(_SETTINGS).get(Query().key == _DEFAULT_KEY)
        personas = self.list()
        ids = {p.id for p in personas}
        if stored is not None and not isinstance(stored, builtins.list) and stored.get("value") in ids:
            return str(stored["value"])
        if not personas:  # every record damaged or removed by hand: start again with "User"
            return self.create(DEFAULT_PERSONA_NAME).id
        return personas[0].id

    def default(self) -> Persona:
        return self.get(self.default_id())

    def resolve(self, persona_id: str | None) -> Persona:
        """The persona a chat uses: the one it is locked to, or the default when none is or it is gone."""
        if persona_id is not None:
            try:
                return self.get(persona_id)
            except (NotFoundError, StoreCorruptError):
                pass
        return self.default()

    def avatar_path(self, persona_id: str) -> Path | None:
        """Where the persona's avatar is, or None when it has none."""
        persona = self.get(persona_id)
        return self.avatars_dir / f"{persona.id}.png" if persona.has_avatar else None

    # -- changing ----------------------------------------------------------------

    def create(self, name: str, description: str = "") -> Persona:
        persona = Persona(id=new_id(), name=_clean_name(name), description=_checked_description(description))
        with self._lock:
            self._db.table(_PERSONAS).insert(dict(persona.to_dict()))
        return persona

    def save(self, persona_id: str, *, name: str | None = None, description: str | None = None) -> Persona:
        """Change the name and/or the description; what is not given stays."""
        with self._lock:
            persona = self.get(persona_id)
            changed = Persona(
                id=persona.id,
                name=persona.name if name is None else _clean_name(name),
                description=persona.description if description is None else _checked_description(description),
                has_avatar=persona.has_avatar,
            )
            self._write(changed)
        return changed

    def set_default(self, persona_id: str) -> None:
        with self._lock:
            self.get(persona_id)
            self._db.table(_SETTINGS).upsert(
                {"key": _DEFAULT_KEY, "value": persona_id}, Query().key == _DEFAULT_KEY
            )

    def set_avatar(self, persona_id: str, png: bytes | None) -> Persona:
        """Replace the avatar (None removes it). Text chunks in the picture are stripped.

        Raises:
            CardFormatError: `png` is not a usable PNG picture.
        """
        picture = avatar_picture(png)
        with self._lock:
            persona = self.get(persona_id)
            path = self.avatars_dir / f"{persona.id}.png"
            if picture is not None:
                atomic_write_bytes(path, picture)
            changed = Persona(persona.id, persona.name, persona.description, has_avatar=picture is not None)
            self._write(changed)
            if picture is None:  # after the record, so a crash leaves an unused file, never a missing one
                path.unlink(missing_ok=True)
        return changed

    def delete(self, persona_id: str) -> None:
        """Delete a persona; if it was the default, the first remaining one becomes the default.

        Raises:
            StoreError: it is the only persona (there must always be one).
        """
        with self._lock:
            persona = self.get(persona_id)
            if len(self.list()) <= 1:
                raise StoreError(
                    f"{persona.name} is your only persona, so it cannot be deleted. Create another one first."
                )
            was_default = self.default_id() == persona.id
            self._db.table(_PERSONAS).remove(Query().id == persona.id)
            (self.avatars_dir / f"{persona.id}.png").unlink(missing_ok=True)
            if was_default:
                self.set_default(self.default_id())

    def close(self) -> None:
        self._db.close()

    def _write(self, persona: Persona) -> None:
        self._db.table(_PERSONAS).upsert(dict(persona.to_dict()), Query().id == persona.id)


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise StoreError("A persona needs a name.")
    if len(cleaned) > MAX_NAME_CHARS:
        raise StoreError(f"A persona's name can be at most {MAX_NAME_CHARS} characters long.")
    return cleaned


def _checked_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise StoreError(
            f"A persona's description can be at most {MAX_DESCRIPTION_CHARS:,} characters long "
            f"(this one has {len(description):,})."
        )
    return description
