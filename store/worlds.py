"""World books: the user's own lorebooks, kept apart from any character.

    <data dir>/worlds/<id>.json    one book per file (see `WorldBookDict`), written atomically

An enabled book applies to every chat. Books are kept as plain dicts in one of two
shapes, because `store` must not import the engine's `Lorebook`:

- `character_book`: the card spec's lorebook object (`entries` is a list). A
  `lorebook_v3` export (`{"spec": "lorebook_v3", "data": {...}}`) is stored as its
  `data`. The caller builds it with `Lorebook.from_dict(book, name=name)`.
- `st_world_info`: a SillyTavern World Info file (`entries` is an object keyed by uid),
  kept exactly as it came. The caller builds it with `Lorebook.from_world_info`.

Imports are bounded (file size, JSON depth and size, entry count) and anything that is
not one of these shapes is refused with one plain sentence.
"""

from __future__ import annotations

import builtins
import copy
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, cast, get_args

from store.atomic import atomic_write_bytes, read_json
from store.cards import MAX_BOOK_ENTRIES, MAX_JSON_BYTES, load_json, size_text
from store.errors import CardFormatError, NotFoundError, SchemaTooNewError, StoreCorruptError, StoreError
from store.filecache import FileCache
from store.records import check_id, new_id

WORLD_SCHEMA = 1
MAX_WORLD_BYTES = MAX_JSON_BYTES
MAX_NAME_CHARS = 120
DEFAULT_WORLD_NAME = "World book"
Shape = Literal["character_book", "st_world_info"]
_ID_FILE = re.compile(r"[0-9a-f]{32}\.json")
_NOT_FOUND = "That world book no longer exists."
_CARD_SPECS = ("chara_card_v2", "chara_card_v3")


class WorldBookDict(TypedDict):
    """One world book file."""

    schema: int
    id: str
    name: str
    enabled: bool
    shape: Shape
    created: float
    updated: float
    book: dict[str, Any]


@dataclass(frozen=True)
class WorldBookSummary:
    """What the world book list shows."""

    id: str
    name: str
    entries: int
    enabled: bool
    shape: Shape


@dataclass(frozen=True)
class WorldBook:
    """A stored world book. `name` is the one the user sees; `book` is the raw dict in `shape`."""

    id: str
    name: str
    enabled: bool
    shape: Shape
    book: dict[str, Any]
    created: float
    updated: float


class WorldBookStore:
    """Import, list, enable, rename, edit and delete world books."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._summaries: FileCache[WorldBookSummary] = FileCache()

    # -- reading -----------------------------------------------------------------

    def list(self) -> builtins.list[WorldBookSummary]:
        """Every book, by name (ignoring case). A damaged file is left out, not fatal."""
        found: builtins.list[WorldBookSummary] = []
        for path in self.root.iterdir():
            if _ID_FILE.fullmatch(path.name):
                try:
                    found.append(self._summary(path.stem))
                except StoreError:
                    continue
        return sorted(found, key=lambda s: (s.name.casefold(), s.id))

    def get(self, book_id: str) -> WorldBook:
        """Raises NotFoundError if there is no such book, StoreCorruptError if it is damaged."""
        doc = self._read(book_id)
        return WorldBook(
            id=doc["id"],
            name=doc["name"],
            enabled=doc["enabled"],
            shape=doc["shape"],
            book=doc["book"],
            created=doc["created"],
            updated=doc["updated"],
        )

    def enabled_books(self) -> builtins.list[WorldBook]:
        """The books that apply to every chat, by name."""
        return [self.get(summary.id) for summary in self.list() if summary.enabled]

    # -- changing ----------------------------------------------------------------

    def import_file(self, data: bytes, filename: str = "", *, enabled: bool = False) -> WorldBookSummary:
        """Store a world book file: a `lorebook_v3` export, a `character_book`, or SillyTavern World Info.

        Args:
            data: the whole file.
            filename: the name the user gave it; names a book that has no name of its own,
                and appears in error messages. It never becomes a path.
            enabled: whether the book applies to every chat straight away.

        Raises:
            StoreError: the file is not a world book, or is over a limit; the message says which.
        """
        try:
            shape, book = parse_world_book(data)
        except StoreError as err:
            raise StoreError(f"Could not import {_shown(filename)}: {err}.") from None
        now = time.time()
        doc: WorldBookDict = {
            "schema": WORLD_SCHEMA,
            "id": new_id(),
            "name": _book_name(book, shape) or _name_from_file(filename) or DEFAULT_WORLD_NAME,
            "enabled": enabled,
            "shape": shape,
            "created": now,
            "updated": now,
            "book": book,
        }
        with self._lock:
            self._write(doc)
        return self._summary(doc["id"])

    def set_enabled(self, book_id: str, enabled: bool) -> WorldBookSummary:
        with self._lock:
            doc = self._read(book_id)
            doc["enabled"] = enabled
            self._write(doc)
        return self._summary(book_id)

    def rename(self, book_id: str, name: str) -> WorldBookSummary:
        """Rename the book (a `character_book` also gets the name inside, so exports agree)."""
        cleaned = " ".join(name.split())[:MAX_NAME_CHARS]
        if not cleaned:
            raise StoreError("A world book needs a name.")
        with self._lock:
            doc = self._read(book_id)
            doc["name"] = cleaned
            if doc["shape"] == "character_book":
                doc["book"]["name"] = cleaned
            self._write(doc)
        return self._summary(book_id)

    def save(self, book_id: str, book: dict[str, Any], shape: Shape = "character_book") -> WorldBookSummary:
        """Replace the book's contents after editing (say, `Lorebook.to_dict()`); name and state stay.

        Raises:
            StoreError: `book` is not a book of that shape, or is over a limit.
        """
        try:
            checked = _checked_book(copy.deepcopy(book), shape)
        except StoreError as err:
            raise StoreError(f"The world book cannot be saved: {err}.") from None
        if len(json.dumps(checked, ensure_ascii=False).encode("utf-8")) > MAX_WORLD_BYTES:
            raise StoreError(
                f"The world book is over the {size_text(MAX_WORLD_BYTES)} limit, so it was not saved."
            )
        with self._lock:
            doc = self._read(book_id)
            doc["book"], doc["shape"] = checked, shape
            self._write(doc)
        return self._summary(book_id)

    def delete(self, book_id: str) -> None:
        with self._lock:
            try:
                self._path(book_id).unlink()
            except FileNotFoundError:
                raise NotFoundError(_NOT_FOUND) from None
            except OSError as exc:
                raise StoreError(f"Could not delete the world book: {exc.strerror or exc}.") from exc
            self._summaries.forget(book_id)

    # -- internals ---------------------------------------------------------------

    def _path(self, book_id: str) -> Path:
        return self.root / f"{check_id(book_id)}.json"

    def _write(self, doc: WorldBookDict) -> None:
        doc["updated"] = time.time()
        encoded = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        atomic_write_bytes(self._path(doc["id"]), encoded)

    def _read(self, book_id: str) -> WorldBookDict:
        path = self._path(book_id)
        try:
            raw = read_json(path)
        except FileNotFoundError:
            raise NotFoundError(_NOT_FOUND) from None
        except OSError as exc:
            raise StoreError(f"Could not read the world book: {exc.strerror or exc}.") from exc
        return _checked_doc(raw, book_id)

    def _summary(self, book_id: str) -> WorldBookSummary:
        """Cached until the file changes, so listing does not parse every book every time."""

        def build() -> WorldBookSummary:
            doc = self._read(book_id)
            return WorldBookSummary(
                doc["id"], doc["name"], len(doc["book"]["entries"]), doc["enabled"], doc["shape"]
            )

        try:
            return self._summaries.get(book_id, self._path(book_id), build)
        except FileNotFoundError:
            raise NotFoundError(_NOT_FOUND) from None


def parse_world_book(data: bytes) -> tuple[Shape, dict[str, Any]]:
    """The shape and the dict to store for a world book file.

    Raises:
        StoreError: a lowercase fragment saying what is wrong (the caller names the file).
    """
    if len(data) > MAX_WORLD_BYTES:
        raise StoreError(f"the file is over the {size_text(MAX_WORLD_BYTES)} limit for world books")
    if not data.strip():
        raise StoreError("the file is empty")
    try:
        value = load_json(data, "the file")
    except CardFormatError as err:
        raise StoreError(str(err)) from None
    if not isinstance(value, dict):
        raise StoreError("it is not a world book (a world book is a JSON object with entries)")
    spec = value.get("spec")
    if spec in _CARD_SPECS:
        raise StoreError(
            "it is a character card, not a world book; import it as a character (its lorebook comes with it)"
        )
    if spec == "lorebook_v3":
        inner = value.get("data")
        if not isinstance(inner, dict):
            raise StoreError("it says it is a lorebook_v3 file but has no data object")
        return "character_book", _checked_book(inner, "character_book")
    if spec is not None:
        raise StoreError(f"its format {str(spec)[:40]!r} is not one Hearth reads as a world book")
    entries = value.get("entries")
    if isinstance(entries, builtins.list):
        return "character_book", _checked_book(value, "character_book")
    if isinstance(entries, dict):
        return "st_world_info", _checked_book(value, "st_world_info")
    raise StoreError("it is not a world book (it has no list or object of entries)")


def _checked_book(book: dict[str, Any], shape: Shape) -> dict[str, Any]:
    entries = book.get("entries") if isinstance(book, dict) else None
    want = builtins.list if shape == "character_book" else dict
    if not isinstance(entries, want):
        kind = "a list" if shape == "character_book" else "an object keyed by uid"
        raise StoreError(f"its entries must be {kind}")
    if len(entries) > MAX_BOOK_ENTRIES:
        raise StoreError(f"it has {len(entries):,} entries; the limit is {MAX_BOOK_ENTRIES:,}")
    items = entries if isinstance(entries, builtins.list) else builtins.list(entries.values())
    for index, entry in enumerate(items):
        if not isinstance(entry, dict):
            raise StoreError(f"entry {index + 1} is not an object")
    return book


def _checked_doc(raw: Any, book_id: str) -> WorldBookDict:
    """The file's contents with their shape checked, so later code can trust every field."""
    damaged = StoreCorruptError(f"The world book {book_id} is damaged (its file is not valid).")
    if not isinstance(raw, dict):
        raise damaged
    schema = raw.get("schema")
    if isinstance(schema, int) and schema > WORLD_SCHEMA:
        raise SchemaTooNewError("This world book was saved by a newer Hearth; update Hearth to open it.")
    valid = (
        isinstance(schema, int)
        and raw.get("id") == book_id
        and isinstance(raw.get("name"), str)
        and isinstance(raw.get("enabled"), bool)
        and raw.get("shape") in get_args(Shape)
        and all(isinstance(raw.get(key), (int, float)) for key in ("created", "updated"))
        and isinstance(raw.get("book"), dict)
    )
    if not valid:
        raise damaged
    try:
        _checked_book(raw["book"], raw["shape"])
    except StoreError:
        raise damaged from None
    return cast(WorldBookDict, {key: raw[key] for key in WorldBookDict.__annotations__})


def _book_name(book: dict[str, Any], shape: Shape) -> str:
    name = book.get("name") if shape == "character_book" else None
    return _clean_text(name) if isinstance(name, str) else ""


def _name_from_file(filename: str) -> str:
    stem = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return _clean_text(stem[: -len(".json")] if stem.lower().endswith(".json") else stem)


def _clean_text(text: str) -> str:
    return " ".join("".join(c for c in text if c.isprintable()).split())[:MAX_NAME_CHARS]


def _shown(filename: str) -> str:
    name = _clean_text(filename.replace("\\", "/").rsplit("/", 1)[-1])[:80]
    return f"“{name}”" if name else "the file"
