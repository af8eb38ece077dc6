"""The data folder: one `Store` opens it, migrates it, and hands out the sub-stores.

<data dir>/hearth.json    meta (schema version), settings, the user's sampler presets
<data dir>/sessions/      chats (see store.chats.sessions)
<data dir>/models/        model files the user downloaded or added
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.table import Document

from presets.errors import SamplerError
from presets.samplers import SamplerPreset, parse_preset, preset_to_dict
from store.atomic import AtomicJSONStorage, remove_stale_temp_files
from store.characters import CharacterStore
from store.chats import SessionStore
from store.errors import NotFoundError, StoreError
from store.migrations import migrate
from store.personas import PersonaStore
from store.stories import StoryStore
from store.worlds import WorldBookStore

log = logging.getLogger(__name__)

_SETTINGS_TABLE = "settings"
# The folders the stores below write into: the only ones a start-up sweep of temp files
# may enter (never `models/`, where downloads and conversions keep their own files).
OWN_FOLDERS = ("sessions", "characters", "personas", "worlds", "stories")
_PRESETS_TABLE = "sampler_presets"


class Store:
    """Everything Hearth keeps on disk, under one data folder."""

    def __init__(self, data_dir: Path) -> None:
        """Open (creating if needed) and migrate a data folder.

        Raises:
            StoreError: the folder cannot be created or read.
            SchemaTooNewError: it was written by a newer Hearth.
        """
        self.data_dir = data_dir
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the data folder {data_dir}: {exc.strerror}.") from exc
        db_path = data_dir / "hearth.json"
        fresh = not db_path.exists()
        stale = remove_stale_temp_files(data_dir, OWN_FOLDERS)
        if stale:
            log.info("removed %d temp files left by an interrupted write", stale)
        self._db = TinyDB(db_path, storage=AtomicJSONStorage)
        self._lock = threading.Lock()
        self.migrations_applied = migrate(data_dir, self._db, fresh=fresh)
        self.sessions = SessionStore(data_dir / "sessions")
        self.characters = CharacterStore(data_dir / "characters")
        self.personas = PersonaStore(data_dir)
        self.worlds = WorldBookStore(data_dir / "worlds")
        self.stories = StoryStore(data_dir / "stories")
        self.models_dir = data_dir / "models"
        self.models_dir.mkdir(exist_ok=True)

    # -- settings ----------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        doc = self._db.table(_SETTINGS_TABLE).get(Query().key == key)
        return default if doc is None or isinstance(doc, list) else doc["value"]

    def set_setting(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.table(_SETTINGS_TABLE).upsert({"key": key, "value": value}, Query().key == key)

    # -- the user's sampler presets ----------------------------------------------

    def user_presets(self) -> dict[str, SamplerPreset]:
        """Presets the user saved. A damaged one is skipped, not fatal."""
        presets = {}
        for doc in self._db.table(_PRESETS_TABLE).all():
            try:
                preset = parse_preset(dict(doc), source="saved preset", builtin=False)
            except SamplerError as exc:
                log.warning("skipping a saved sampler preset: %s", exc)
                continue
            presets[preset.name] = preset
        return presets

    def save_preset(self, preset: SamplerPreset) -> None:
        with self._lock:
            table = self._db.table(_PRESETS_TABLE)
            table.upsert(Document(preset_to_dict(preset), doc_id=_preset_doc_id(table, preset.name)))

    def delete_preset(self, name: str) -> None:
        with self._lock:
            removed = self._db.table(_PRESETS_TABLE).remove(Query().name == name)
        if not removed:
            raise NotFoundError(f"There is no saved preset called {name!r}.")

    def close(self) -> None:
        self._db.close()
        self.personas.close()


def _preset_doc_id(table: Any, name: str) -> int:
    existing = table.get(Query().name == name)
    if existing is not None and not isinstance(existing, list):
        return int(existing.doc_id)
    return max((int(d.doc_id) for d in table.all()), default=0) + 1
