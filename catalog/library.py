"""The local model library: downloaded GGUFs, files the user added by path, and the bundled model.

Downloads live under the models folder, where Hearth owns the files and may delete
them; so do legacy GGML files converted to GGUF (`<models>/converted/`). Files added
by path stay where they are; the library only remembers them in a small registry, and
"delete" forgets them without touching the file. Model folders (`--model-dir`: another
app's models, such as text-generation-webui's `user_data/models` or LM Studio's) are
scanned as they are and never written to. Metadata is read
from the GGUF header (`engine.gguf`); weights are never loaded, and a damaged file
is listed with its problem rather than breaking the list.

Item ids are made here (a hash of source and path, or "bundled") and checked on the
way back in: they select an item from the current listing and never become a path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from catalog.bundled import BUNDLED_NAME, bundled_model_path
from catalog.entries import Catalog
from catalog.errors import CatalogError, LibraryError, UnsafeNameError
from catalog.naming import is_projector, preferred_projector
from engine.errors import EngineError, LegacyGGMLError
from engine.gguf import model_info, sniff_container
from engine.types import ModelInfo
from store.atomic import atomic_write_bytes, read_json
from store.errors import StoreError

Source = Literal["downloaded", "added", "bundled", "converted", "folder"]
BUNDLED_ID = "bundled"
REGISTRY_SCHEMA = 1
LEGACY_SUFFIX = ".bin"
CONVERTED_FOLDER = "converted"  # legacy GGML files converted by Hearth: <models>/converted/<name>.gguf
LEFTOVER_SUFFIXES = (".part", ".part.json")
_ID = re.compile(r"bundled|[0-9a-f]{16}")
_SPLIT = re.compile(r"(?P<stem>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.gguf", re.IGNORECASE)


@dataclass(frozen=True)
class LibraryItem:
    """One model the user can load, as the Models tab lists it."""

    id: str
    name: str
    path: Path  # the file to load: the first part of a split model
    source: Source
    size: int  # bytes, all parts together
    architecture: str = ""
    quant: str = ""
    context_length: int = 0
    has_chat_template: bool = False
    catalog_id: str | None = None
    parts: tuple[Path, ...] = ()
    needs_conversion: bool = False  # a legacy GGML file: convert it before loading
    error: str = ""  # why the file cannot be used, in words; empty when it can
    info: ModelInfo | None = None
    projector: Path | None = None  # a vision projector beside it, loaded with it

    @property
    def usable(self) -> bool:
        return not self.error and not self.needs_conversion


class Library:
    """Lists, adds and deletes local models."""

    def __init__(
        self,
        models_dir: Path,
        registry: Path,
        *,
        catalog: Catalog | None = None,
        bundled: Callable[[], Path] | None = bundled_model_path,
        folders: Sequence[Path] = (),
    ) -> None:
        """Args:
        models_dir: the folder downloads go to (created when needed).
        registry: the JSON file remembering files added by path.
        catalog: used to match files to the guide's entries.
        bundled: returns the bundled model's path; None leaves it out (tests).
        folders: other apps' model folders, listed in place (source "folder").
        """
        self.models_dir = models_dir
        self.registry = registry
        self.catalog = catalog
        self._bundled = bundled
        self.folders = tuple(folders)

    @property
    def converted_dir(self) -> Path:
        """Where converted legacy models are written; the scan lists them as "converted"."""
        return self.models_dir / CONVERTED_FOLDER

    def items(self) -> list[LibraryItem]:
        """Every model: the bundled one, then downloads, then added files, then the model
        folders' files, each sorted by name.

        Raises:
            LibraryError: the registry of added files is damaged.
        """
        found: list[LibraryItem] = []
        if self._bundled is not None:
            found.append(self._bundled_item(self._bundled))
        found += sorted(self._downloaded(), key=lambda item: item.name.lower())
        found += sorted(
            (self._item(Path(p), "added") for p in self._registered()), key=lambda i: i.name.lower()
        )
        for folder in self.folders:
            found += sorted(self._scan(folder, lambda _relative: "folder"), key=lambda i: i.name.lower())
        return found

    def get(self, item_id: str) -> LibraryItem:
        """The item with this id.

        Raises:
            UnsafeNameError: the id is not one Hearth makes.
            LibraryError: no such item (it may have been deleted already).
        """
        if not isinstance(item_id, str) or not _ID.fullmatch(item_id):
            raise UnsafeNameError(f"{str(item_id)[:40]!r} is not a model id Hearth made, so it was ignored.")
        for item in self.items():
            if item.id == item_id:
                return item
        raise LibraryError("That model is no longer in the library; it may have been deleted already.")

    def add(self, path: Path) -> LibraryItem:
        """Register a model file where it is (nothing is copied).

        A legacy GGML file is accepted too (as `.bin`, or misnamed `.gguf`), and listed as
        needing conversion.

        Raises:
            LibraryError: no such file, not a model file, or the registry cannot be saved.
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise LibraryError(f"There is no file at {path}.")
        path = path.resolve()
        if path.suffix.lower() not in (".gguf", LEGACY_SUFFIX):
            raise LibraryError(
                f"{path.name} is not a model file: Hearth adds .gguf files (or legacy GGML .bin)."
            )
        if is_projector(path.name):
            raise LibraryError(
                f"{path.name} is a vision projector, not a model: add the model beside it, "
                "and Hearth loads the projector with it."
            )
        try:
            container, _ = sniff_container(path)
        except EngineError as exc:
            raise LibraryError(str(exc)) from exc
        split = _SPLIT.fullmatch(path.name)
        if split and split["index"] != "00001" and container == "GGUF":
            path = path.with_name(f"{split['stem']}-00001-of-{split['total']}.gguf")
            if not path.is_file():
                raise LibraryError(f"{path.name}, the first part of this split model, is missing.")
        if self._is_listed_download(path):
            # Spell the path as the scan does, so the item gets the same id as in the listing.
            relative = path.relative_to(self.models_dir.resolve())
            return self._item(self.models_dir / relative, _scan_source(relative))
        registered = self._registered()
        if str(path) not in registered:
            self._save_registry([*registered, str(path)])
        return self._item(path, "added")

    def delete(self, item_id: str) -> LibraryItem:
        """Delete a downloaded model (every part and leftover), or forget an added one.

        Returns the item as it was. Files added by path are never deleted, only forgotten.

        Raises:
            UnsafeNameError: a hostile id, or a path that would leave the models folder.
            LibraryError: no such item, the bundled model, or the files cannot be removed.
        """
        item = self.get(item_id)
        if item.source == "bundled":
            raise LibraryError(f"{BUNDLED_NAME} ships with Hearth and cannot be deleted.")
        if item.source == "folder":
            raise LibraryError(
                f"{item.name} is in a model folder Hearth only lists (--model-dir), so Hearth "
                "leaves it alone. Delete it with the app that owns that folder."
            )
        if item.source == "added":
            self._save_registry([p for p in self._registered() if p != str(item.path)])
            return item
        for part in item.parts or (item.path,):
            self._remove_download(part)
        self._prune_empty_folders(item.path.parent)
        return item

    # Listing

    def _bundled_item(self, locate: Callable[[], Path]) -> LibraryItem:
        try:
            path = locate()
        except CatalogError as exc:
            return LibraryItem(BUNDLED_ID, BUNDLED_NAME, Path(), "bundled", 0, error=str(exc))
        item = self._item(path, "bundled")
        return replace(item, id=BUNDLED_ID, name=BUNDLED_NAME)

    def _downloaded(self) -> list[LibraryItem]:
        return self._scan(self.models_dir, _scan_source)

    def _scan(self, root: Path, source_of: Callable[[Path], Source]) -> list[LibraryItem]:
        if not root.is_dir():
            return []
        splits: dict[tuple[Path, str, str], list[Path]] = {}
        items: list[LibraryItem] = []
        for path in root.rglob("*"):
            relative = path.relative_to(root)
            # Hidden folders hold download bookkeeping (.cache) and temp files; skip them.
            if any(part.startswith(".") for part in relative.parts) or path.suffix.lower() != ".gguf":
                continue
            if not path.is_file() or is_projector(path.name):
                continue
            split = _SPLIT.fullmatch(path.name)
            if split:
                splits.setdefault((path.parent, split["stem"], split["total"]), []).append(path)
            else:
                items.append(self._item(path, source_of(relative)))
        items += [
            self._split_item(parent, stem, total, parts, source_of(parent.relative_to(root)))
            for (parent, stem, total), parts in splits.items()
        ]
        return items

    def _split_item(
        self, parent: Path, stem: str, total: str, parts: list[Path], source: Source
    ) -> LibraryItem:
        parts = sorted(parts)
        first = parent / f"{stem}-00001-of-{total}.gguf"
        item = self._item(first if first.is_file() else parts[0], source, parts=tuple(parts))
        problem = ""
        if not first.is_file():
            problem = f"Part 1 of {int(total)} of {stem} is missing, so it cannot be loaded."
        elif len(parts) < int(total):
            problem = (
                f"Only {len(parts)} of {int(total)} parts of {stem} are here; the download is incomplete."
            )
        return replace(item, error=item.error or problem) if problem else item

    def _item(self, path: Path, source: Source, parts: tuple[Path, ...] = ()) -> LibraryItem:
        owned = source in ("downloaded", "converted")
        key = path.relative_to(self.models_dir).as_posix() if owned else str(path)
        item_id = hashlib.sha256(f"{source}:{key}".encode()).hexdigest()[:16]
        size = sum(_size(p) for p in parts) if parts else _size(path)
        catalog_id = self._catalog_id(key)
        base = LibraryItem(item_id, path.name, path, source, size, catalog_id=catalog_id, parts=parts)
        if not path.is_file():
            missing = f"The file is no longer at {path}. Delete it from the list, or put the file back."
            return replace(base, error=missing)
        if path.suffix.lower() == LEGACY_SUFFIX:
            return self._legacy_item(base)
        try:
            info = _model_info(path)
        except LegacyGGMLError:
            return self._legacy_item(base)  # a legacy file misnamed .gguf
        except EngineError as exc:
            return replace(base, error=str(exc))
        catalog_id = catalog_id or self._catalog_id(info.name)
        return replace(
            base,
            name=self._display_name(catalog_id, info.name, path),
            architecture=info.architecture,
            quant=info.quant,
            context_length=info.context_length,
            has_chat_template=bool(info.chat_template),
            catalog_id=catalog_id,
            info=info,
            projector=projector_beside(path),
        )

    def _display_name(self, catalog_id: str | None, general_name: str, path: Path) -> str:
        # The catalog's name says most; else the file's own name, unless it is just the file stem.
        entry = self.catalog.find(catalog_id) if self.catalog and catalog_id else None
        if entry is not None:
            return entry.name
        split = _SPLIT.fullmatch(path.name)
        stem = split["stem"] if split else path.stem
        return general_name if general_name and general_name != path.stem else stem

    def _legacy_item(self, base: LibraryItem) -> LibraryItem:
        try:
            container, version = sniff_container(base.path)
        except EngineError as exc:
            return replace(base, error=str(exc))
        label = container if version is None else f"{container} v{version}"
        return replace(base, architecture=f"legacy {label}", needs_conversion=True)

    def _catalog_id(self, name: str) -> str | None:
        entry = self.catalog.match(name) if self.catalog and name else None
        return entry.id if entry else None

    # Registry of files added by path

    def _registered(self) -> list[str]:
        if not self.registry.is_file():
            return []
        try:
            data = read_json(self.registry)
        except (StoreError, OSError) as exc:
            raise LibraryError(
                f"The list of added models ({self.registry.name}) is damaged: {exc} "
                "Delete that file to start the list afresh; the models themselves are untouched."
            ) from exc
        added = data.get("added") if isinstance(data, dict) else None
        if not isinstance(added, list) or not all(isinstance(p, str) for p in added):
            raise LibraryError(
                f"The list of added models ({self.registry.name}) is damaged. "
                "Delete that file to start the list afresh; the models themselves are untouched."
            )
        return added

    def _save_registry(self, paths: list[str]) -> None:
        data = {"schema": REGISTRY_SCHEMA, "added": paths}
        try:
            self.registry.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.registry, json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8"))
        except (StoreError, OSError) as exc:
            raise LibraryError(f"Could not save the list of added models: {exc}") from exc

    # Deleting downloads

    def _is_listed_download(self, path: Path) -> bool:
        """True for a .gguf the models-folder scan lists (so it needs no registry entry)."""
        root = self.models_dir.resolve()
        if path.suffix.lower() != ".gguf" or not path.is_relative_to(root):
            return False
        return not any(part.startswith(".") for part in path.relative_to(root).parts)

    def _remove_download(self, part: Path) -> None:
        # Check the folder, not the file: a symlinked download is removed as a link, never followed.
        if not part.parent.resolve().is_relative_to(self.models_dir.resolve()):
            raise UnsafeNameError(f"{part} is outside the models folder, so Hearth will not delete it.")
        for target in (part, *(part.with_name(part.name + s) for s in LEFTOVER_SUFFIXES)):
            try:
                target.unlink(missing_ok=True)
            except OSError as exc:
                raise LibraryError(f"Could not delete {target.name}: {exc.strerror or exc}.") from exc

    def _prune_empty_folders(self, folder: Path) -> None:
        root = self.models_dir.resolve()
        folder = folder.resolve()
        while folder != root and folder.is_relative_to(root):
            try:
                folder.rmdir()  # only succeeds when empty
            except OSError:
                return
            folder = folder.parent


def _model_info(path: Path) -> ModelInfo:
    """A file's facts, read once per version of the file: the Models tab lists the library
    several times a page, and a 262k-token vocabulary takes a while to walk."""
    try:
        stat = path.stat()
    except OSError:
        return model_info(path)  # says what is wrong with it, in words
    return _model_info_of(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _model_info_of(path: Path, _size: int, _mtime_ns: int) -> ModelInfo:
    return model_info(path)


def _scan_source(relative: Path) -> Source:
    """A file the models-folder scan finds is a download, or a conversion when directly in converted/."""
    parts = relative.parts
    return "converted" if len(parts) == 2 and parts[0] == CONVERTED_FOLDER else "downloaded"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def projector_beside(model: Path) -> Path | None:
    """The vision projector in a model's folder (`mmproj-*.gguf`; the preferred of several)."""
    try:
        names = [p.name for p in model.parent.iterdir() if p.is_file() and is_projector(p.name)]
    except OSError:
        return None
    chosen = preferred_projector(names)
    return model.parent / chosen if chosen is not None else None

