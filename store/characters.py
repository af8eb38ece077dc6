"""Characters, sharded one folder each so that editing one never rewrites another.

Layout under the characters folder (every name here is generated, never taken from a card):

    <id>/character.json          the record (TinyDB, one document: see `CharacterDoc`)
    <id>/avatar.png              the picture, text chunks removed (only if it has one)
    <id>/assets/asset-NNN.<ext>  files the card embeds (CHARX members, PNG asset chunks)
    .unfinished/                 folders being built or deleted; emptied at start

A character is built complete in `.unfinished/` and then renamed into place, and a
delete renames it out before removing it, so a crash never leaves half a character.
"""

from __future__ import annotations

import builtins
import os
import re
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, cast

from tinydb import Query, TinyDB

from store.atomic import AtomicJSONStorage, atomic_write_bytes, fsync_dir
from store.cards import (
    AssetFile,
    CardRecord,
    CharacterCard,
    ImportedCard,
    avatar_picture,
    card_from_json,
    card_from_record,
    card_to_record,
)
from store.errors import CardFormatError, NotFoundError, SchemaTooNewError, StoreCorruptError, StoreError
from store.records import check_id, new_id

CHARACTER_SCHEMA = 1
CREATED_IN_HEARTH = "hearth"  # the `source_format` of `create_blank` characters (imports keep "png", …)
COPY_SUFFIX = " (copy)"
MAX_NAME_CHARS = 200
RECORD_FILE = "character.json"
AVATAR_FILE = "avatar.png"
ASSETS_DIR = "assets"
UNFINISHED_DIR = ".unfinished"
_TABLE = "character"
_ASSET_FILE = re.compile(r"asset-[0-9]{3,6}\.[a-z0-9]{1,10}")
_NOT_FOUND = "That character no longer exists."
Source = bytes | Path  # a file's bytes, or the stored file to copy them from


class AssetRef(TypedDict):
    """One stored asset file: its generated file name and the card's reference to it."""

    file: str
    uri: str
    ext: str


class SearchIndex(TypedDict):
    """The few card fields the list and its search need, so listing never parses a card."""

    name: str
    nickname: str
    tags: list[str]
    creator: str


class CharacterDoc(TypedDict):
    """The one document in `character.json`."""

    schema: int
    id: str
    created: float
    updated: float
    has_avatar: bool
    source_format: str
    warnings: list[str]
    assets: list[AssetRef]
    index: SearchIndex
    card: CardRecord


@dataclass(frozen=True)
class CharacterSummary:
    """What the character list shows; built from the record alone."""

    id: str
    name: str
    tags: tuple[str, ...]
    creator: str
    has_avatar: bool
    avatar_path: Path | None
    updated: float
    nickname: str = ""
    created: float = 0.0

    def matches(self, terms: Sequence[str]) -> bool:
        """Whether every casefolded term is in the name, nickname, a tag or the creator."""
        haystack = "\n".join([self.name, self.nickname, *self.tags, self.creator]).casefold()
        return all(term in haystack for term in terms)


@dataclass(frozen=True)
class StoredCharacter:
    """A stored character. The avatar and asset bytes are read only when asked for."""

    id: str
    card: CharacterCard
    created: float
    updated: float
    source_format: str
    warnings: tuple[str, ...]
    avatar_path: Path | None
    folder: Path
    asset_refs: tuple[AssetRef, ...] = ()

    def avatar_png(self) -> bytes | None:
        """The avatar PNG, or None when the character has none."""
        return None if self.avatar_path is None else _read(self.avatar_path)

    def asset_files(self) -> tuple[AssetFile, ...]:
        """The embedded asset files, keyed as stored, ready for `export_charx`/`export_png`."""
        return tuple(
            AssetFile(key=ref["file"].split(".")[0], uri=ref["uri"], ext=ref["ext"], data=_read(path))
            for ref, path in ((ref, self.folder / ASSETS_DIR / ref["file"]) for ref in self.asset_refs)
        )


class CharacterStore:
    """Create (from an imported card or blank), list, search, edit, duplicate and delete characters."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        shutil.rmtree(self.root / UNFINISHED_DIR, ignore_errors=True)  # whatever a crash left

    def list(self, query: str = "") -> builtins.list[CharacterSummary]:
        """Characters whose name, nickname, tags or creator contain every word of `query`.

        Sorted by name, ignoring case, then oldest first. A damaged character is left out, not fatal.
        """
        terms = query.casefold().split()
        found: builtins.list[CharacterSummary] = []
        for folder in self.root.iterdir():
            try:
                summary = _summarise(_read_doc(self._dir(folder.name)), self.root)
            except StoreError:  # not a character (`.unfinished`) or a damaged one
                continue
            if summary.matches(terms):
                found.append(summary)
        return sorted(found, key=lambda s: (s.name.casefold(), s.created, s.id))

    def get(self, character_id: str) -> StoredCharacter:
        """Raises NotFoundError if there is no such character, StoreCorruptError if it is damaged."""
        folder = self._dir(character_id)
        doc = _read_doc(folder)
        return StoredCharacter(
            id=doc["id"],
            card=card_from_record(doc["card"]),
            created=doc["created"],
            updated=doc["updated"],
            source_format=doc["source_format"],
            warnings=tuple(doc["warnings"]),
            avatar_path=folder / AVATAR_FILE if doc["has_avatar"] else None,
            folder=folder,
            asset_refs=tuple(doc["assets"]),
        )

    def create(self, imported: ImportedCard) -> CharacterSummary:
        """Store an imported card with its avatar and asset files, all or nothing."""
        doc = _new_doc(imported.card, imported.source_format, imported.warnings)
        doc["assets"] = [
            AssetRef(file=f"asset-{i:03d}.{_safe_ext(f.ext)}", uri=f.uri, ext=_safe_ext(f.ext))
            for i, f in enumerate(imported.asset_files)
        ]
        files = [(ref["file"], f.data) for ref, f in zip(doc["assets"], imported.asset_files, strict=True)]
        self._create(doc, imported.avatar_png, files)
        return _summarise(doc, self.root)

    def create_blank(self, name: str) -> CharacterSummary:
        """A new, empty V2 character called `name`."""
        name = " ".join(name.split())[:MAX_NAME_CHARS]
        if not name:
            raise StoreError("A character needs a name.")
        doc = _new_doc(CharacterCard(name=name, spec="v2"), CREATED_IN_HEARTH, ())
        self._create(doc, None, [])
        return _summarise(doc, self.root)

    def duplicate(self, character_id: str) -> CharacterSummary:
        """A copy with a new id, its name followed by " (copy)", its avatar and assets copied."""
        with self._lock:
            source = self.get(character_id)
            card = source.card  # a fresh copy: `get` builds it from the record
            card.name = (card.name + COPY_SUFFIX).strip()
            doc = _new_doc(card, source.source_format, source.warnings)
            doc["assets"] = list(source.asset_refs)
            files = [(ref["file"], source.folder / ASSETS_DIR / ref["file"]) for ref in source.asset_refs]
            self._create(doc, source.avatar_path, files)
        return _summarise(doc, self.root)

    def save(self, character_id: str, card: CharacterCard) -> CharacterSummary:
        """Store an edited card; the avatar and asset files stay as they are.

        Raises:
            CardFormatError: the card breaks a card rule or limit (it was not saved).
            NotFoundError: the character was deleted meanwhile.
        """
        record = _checked_record(card)
        with self._lock:
            folder = self._dir(character_id)
            doc = _read_doc(folder)
            doc["card"], doc["index"], doc["updated"] = record, _index(card), time.time()
            _write_doc(folder, doc)
        return _summarise(doc, self.root)

    def set_avatar(self, character_id: str, png: bytes | None) -> CharacterSummary:
        """Replace the avatar (None removes it). Text chunks (an old card, say) are stripped.

        Raises:
            CardFormatError: `png` is not a usable PNG picture.
        """
        picture = avatar_picture(png)
        with self._lock:
            folder = self._dir(character_id)
            doc = _read_doc(folder)
            if picture is not None:
                atomic_write_bytes(folder / AVATAR_FILE, picture)
            doc["has_avatar"], doc["updated"] = picture is not None, time.time()
            _write_doc(folder, doc)
            if picture is None:  # after the record, so a crash leaves an unused file, never a missing one
                (folder / AVATAR_FILE).unlink(missing_ok=True)
        return _summarise(doc, self.root)

    def delete(self, character_id: str) -> None:
        with self._lock:
            folder = self._dir(character_id)
            if not folder.is_dir():
                raise NotFoundError(_NOT_FOUND)
            trash = self._unfinished() / new_id()
            try:
                _rename_folder(folder, trash)
            except OSError as exc:
                raise StoreError(f"Could not delete the character: {exc.strerror or exc}.") from exc
            shutil.rmtree(trash, ignore_errors=True)

    # -- internals ---------------------------------------------------------------

    def _dir(self, character_id: str) -> Path:
        return self.root / check_id(character_id)

    def _unfinished(self) -> Path:
        folder = self.root / UNFINISHED_DIR
        folder.mkdir(exist_ok=True)
        return folder

    def _create(self, doc: CharacterDoc, avatar: Source | None, files: Sequence[tuple[str, Source]]) -> None:
        """Build the character's folder aside, then rename it into place: all or nothing."""
        doc["has_avatar"] = avatar is not None
        with self._lock:
            staging = self._unfinished() / doc["id"]
            try:
                staging.mkdir()
                if avatar is not None:
                    atomic_write_bytes(staging / AVATAR_FILE, _bytes(avatar))
                if files:
                    (staging / ASSETS_DIR).mkdir()
                for name, source in files:
                    atomic_write_bytes(staging / ASSETS_DIR / name, _bytes(source))
                _write_doc(staging, doc)
                fsync_dir(staging)
                _rename_folder(staging, self._dir(doc["id"]))
                fsync_dir(self.root)
            except BaseException as exc:
                shutil.rmtree(staging, ignore_errors=True)
                if isinstance(exc, OSError):
                    raise StoreError(f"Could not save the character: {exc.strerror or exc}.") from exc
                raise


def _summarise(doc: CharacterDoc, root: Path) -> CharacterSummary:
    index, avatar = doc["index"], root / doc["id"] / AVATAR_FILE
    return CharacterSummary(
        doc["id"], index["name"], tuple(index["tags"]), index["creator"], doc["has_avatar"],
        avatar if doc["has_avatar"] else None, doc["updated"], index["nickname"], doc["created"],
    )  # fmt: skip


def _new_doc(card: CharacterCard, source: str, warnings: tuple[str, ...]) -> CharacterDoc:
    now = time.time()
    return {
        "schema": CHARACTER_SCHEMA,
        "id": new_id(),
        "created": now,
        "updated": now,
        "has_avatar": False,
        "source_format": source,
        "warnings": list(warnings),
        "assets": [],
        "index": _index(card),
        "card": _checked_record(card),
    }


def _index(card: CharacterCard) -> SearchIndex:
    return SearchIndex(
        name=card.name, nickname=card.nickname or "", tags=list(card.tags), creator=card.creator
    )


def _checked_record(card: CharacterCard) -> CardRecord:
    """The card's record, parsed back once so nothing is stored that could not be loaded."""
    record = card_to_record(card)
    try:
        card_from_json(record["card"])
    except CardFormatError as err:
        raise CardFormatError(f"The character cannot be saved: {err}.") from err
    return record


def _safe_ext(ext: str) -> str:
    ext = ext.lower()
    return ext if ext.isascii() and ext.isalnum() and 0 < len(ext) <= 10 else "bin"


def _bytes(source: Source) -> bytes:
    return source if isinstance(source, bytes) else _read(source)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StoreError(f"Could not read {path.name}: {exc.strerror or exc}.") from exc


def _rename_folder(source: Path, target: Path) -> None:
    # A module function, so a test can make the final step of a create fail or crash.
    os.rename(source, target)


def _write_doc(folder: Path, doc: CharacterDoc) -> None:
    with TinyDB(folder / RECORD_FILE, storage=AtomicJSONStorage, create_dirs=False) as db:
        # One upsert is one atomic write; truncate-then-insert would be two.
        db.table(_TABLE).upsert(dict(doc), Query().id == doc["id"])


def _read_doc(folder: Path) -> CharacterDoc:
    path = folder / RECORD_FILE
    if not path.is_file():
        raise NotFoundError(_NOT_FOUND)
    with TinyDB(path, storage=AtomicJSONStorage, create_dirs=False) as db:
        docs = db.table(_TABLE).all()
    if not docs:
        raise StoreCorruptError(f"The character in {folder.name} is damaged (its record is empty).")
    return _checked_doc(dict(docs[0]), folder.name)


def _checked_doc(raw: dict[str, Any], folder_name: str) -> CharacterDoc:
    """The record with its shape checked, so later code can trust every field it reads."""
    if isinstance(raw.get("schema"), int) and raw["schema"] > CHARACTER_SCHEMA:
        raise SchemaTooNewError("This character was saved by a newer Hearth; update Hearth to open it.")
    valid = (
        _typed(raw, _DOC_TYPES)
        and raw["id"] == folder_name
        and _typed(raw["index"], _INDEX_TYPES)
        and _strings(raw["warnings"])
        and _strings(raw["index"]["tags"])
        and all(_typed(ref, _ASSET_TYPES) and _ASSET_FILE.fullmatch(ref["file"]) for ref in raw["assets"])
    )
    if not valid:
        raise StoreCorruptError(f"The character in {folder_name} is damaged (its record is not valid).")
    return cast(CharacterDoc, {key: raw[key] for key in _DOC_TYPES})


_NUMBER = (int, float)
_Types = dict[str, type | tuple[type, ...]]
# The type each field of a stored record must have (`CharacterDoc`, `SearchIndex`, `AssetRef`).
_DOC_TYPES: _Types = {
    "schema": int, "id": str, "created": _NUMBER, "updated": _NUMBER, "has_avatar": bool,
    "source_format": str, "warnings": list, "assets": list, "index": dict, "card": dict,
}  # fmt: skip
_INDEX_TYPES: _Types = {"name": str, "nickname": str, "tags": list, "creator": str}
_ASSET_TYPES: _Types = {"file": str, "uri": str, "ext": str}


def _typed(value: object, types: _Types) -> bool:
    return isinstance(value, dict) and all(isinstance(value.get(key), kind) for key, kind in types.items())


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
