"""Lorebooks as data: entries and books, read from and written to the card spec's shape.

A `Lorebook` is the spec's `character_book` (V2, or V3 with `use_regex`). It is built
from plain dicts with `Lorebook.from_dict` (a `character_book`, or a V3 standalone
`{"spec": "lorebook_v3", "data": …}`) or `Lorebook.from_world_info` (a SillyTavern
World Info file), and written back with `to_dict`. Reading never fails on a book's
contents: a field of the wrong type falls back to its default, an entry that is not
an object is skipped, and each such repair is listed in `notes`. Fields Hearth does
not know are kept in `extra`, and `extensions` is kept whole, so nothing is lost.

SillyTavern settings that Hearth honours, read from an entry's `extensions` (where
SillyTavern writes them when it exports a book into a card):

- `position` 4 (SillyTavern's "@depth") with `depth` and `role`: inserted at a depth;
- `probability` (0-100) when `useProbability` is not false;
- `selectiveLogic` (0 AND ANY, 1 NOT ALL, 2 NOT ANY, 3 AND ALL);
- `scan_depth`, `case_sensitive`, `match_whole_words` (per-entry overrides);
- `exclude_recursion` (recursion cannot activate it), `prevent_recursion` (its
  content does not activate others).

Ignored, but kept: inclusion groups, sticky/cooldown/delay, vector activation,
delay-until-recursion, character filters and automation ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.lore.sillytavern import world_info_to_character_book

__all__ = [
    "LoreEntry",
    "LoreRole",
    "Lorebook",
    "Position",
    "SelectiveLogic",
]

Position = Literal["before_char", "after_char"]
LoreRole = Literal["system", "user", "assistant"]
SelectiveLogic = Literal["and_any", "not_all", "not_any", "and_all"]

_LOGIC: tuple[SelectiveLogic, ...] = ("and_any", "not_all", "not_any", "and_all")
_ROLES: tuple[LoreRole, ...] = ("system", "user", "assistant")
_ST_AT_DEPTH = 4
_ST_DEFAULT_DEPTH = 4
_ST_MARKERS = ("display_index", "selectiveLogic")

_ENTRY_FIELDS = (
    "keys",
    "secondary_keys",
    "content",
    "enabled",
    "insertion_order",
    "case_sensitive",
    "selective",
    "constant",
    "priority",
    "position",
    "use_regex",
    "id",
    "name",
    "comment",
    "extensions",
)
_BOOK_FIELDS = (
    "name",
    "description",
    "scan_depth",
    "token_budget",
    "recursive_scanning",
    "extensions",
    "entries",
)


@dataclass(frozen=True)
class LoreEntry:
    """One lorebook entry. None means "not set": the book's or Hearth's default applies.

    `st_keys` marks a book SillyTavern exported with `use_regex: true` although its keys
    are plain words (see `from_dict`); such keys match as SillyTavern matches them.
    """

    keys: tuple[str, ...]
    content: str
    enabled: bool = True
    insertion_order: float = 100
    secondary_keys: tuple[str, ...] = ()
    case_sensitive: bool | None = None
    match_whole_words: bool | None = None
    selective: bool = False
    selective_logic: SelectiveLogic = "and_any"
    constant: bool = False
    priority: float | None = None
    position: Position | None = None
    depth: int | None = None
    role: LoreRole = "system"
    use_regex: bool | None = None  # unset (a V2 card) means plain keys
    st_keys: bool = False
    scan_depth: int | None = None
    probability: float = 100.0
    exclude_recursion: bool = False
    prevent_recursion: bool = False
    id: int | str | None = None
    name: str | None = None
    comment: str | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def placement(self) -> Position:
        """Where the entry goes when it has no depth; unset means after, as in SillyTavern."""
        return self.position or "after_char"

    @property
    def label(self) -> str:
        """A short name for messages: the entry's name, comment, id or first key."""
        for candidate in (self.name, self.comment):
            if candidate:
                return candidate
        if self.id is not None:
            return f"entry {self.id}"
        return self.keys[0] if self.keys else "unnamed entry"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], notes: list[str] | None = None) -> LoreEntry:
        """Build an entry from the spec's entry object; repairs are appended to `notes`."""
        fix = _Repairs(notes, f"entry {raw.get('id', '?')}")
        ext = raw.get("extensions")
        extensions: Mapping[str, Any] = ext if isinstance(ext, Mapping) else {}
        if ext is not None and not isinstance(ext, Mapping):
            fix.note("extensions", "an object")
        use_regex = _optional_bool(raw.get("use_regex"))
        st_position = extensions.get("position")
        at_depth = st_position == _ST_AT_DEPTH and not isinstance(st_position, bool)
        case_sensitive = _optional_bool(raw.get("case_sensitive"))
        if case_sensitive is None:
            case_sensitive = _optional_bool(extensions.get("case_sensitive"))
        return cls(
            keys=fix.strings(raw, "keys"),
            content=fix.text(raw, "content"),
            enabled=fix.flag(raw, "enabled", True),
            insertion_order=fix.number(raw, "insertion_order", 100),
            secondary_keys=fix.strings(raw, "secondary_keys"),
            case_sensitive=case_sensitive,
            match_whole_words=_optional_bool(extensions.get("match_whole_words")),
            selective=fix.flag(raw, "selective", False),
            selective_logic=_logic(extensions.get("selectiveLogic")),
            constant=fix.flag(raw, "constant", False),
            priority=_number(raw.get("priority")),
            position=_position(raw.get("position")),
            depth=_count(extensions.get("depth"), _ST_DEFAULT_DEPTH) if at_depth else None,
            role=_role(extensions.get("role")),
            use_regex=use_regex,
            st_keys=bool(use_regex) and all(marker in extensions for marker in _ST_MARKERS),
            scan_depth=_count(extensions.get("scan_depth"), None),
            probability=_read_probability(extensions),
            exclude_recursion=extensions.get("exclude_recursion") is True,
            prevent_recursion=extensions.get("prevent_recursion") is True,
            id=raw.get("id") if isinstance(raw.get("id"), int | str) else None,
            name=raw.get("name") if isinstance(raw.get("name"), str) else None,
            comment=raw.get("comment") if isinstance(raw.get("comment"), str) else None,
            extensions=dict(extensions),
            extra={k: v for k, v in raw.items() if k not in _ENTRY_FIELDS},
        )

    def to_dict(self) -> dict[str, Any]:
        """The spec's entry object, with unknown fields and extensions kept."""
        out: dict[str, Any] = dict(self.extra)
        out.update(
            keys=list(self.keys),
            content=self.content,
            extensions=self._extensions_out(),
            enabled=self.enabled,
            insertion_order=_plain_number(self.insertion_order),
            selective=self.selective,
            secondary_keys=list(self.secondary_keys),
            constant=self.constant,
        )
        optional = {
            "case_sensitive": self.case_sensitive,
            "priority": None if self.priority is None else _plain_number(self.priority),
            "position": self.position,
            "use_regex": self.use_regex,
            "id": self.id,
            "name": self.name,
            "comment": self.comment,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    def _extensions_out(self) -> dict[str, Any]:
        """The raw extensions, with Hearth's typed settings written back where they differ."""
        ext = dict(self.extensions)
        if self.match_whole_words is not None or "match_whole_words" in ext:
            ext["match_whole_words"] = self.match_whole_words
        if self.scan_depth is not None or "scan_depth" in ext:
            ext["scan_depth"] = self.scan_depth
        for key, value in (
            ("exclude_recursion", self.exclude_recursion),
            ("prevent_recursion", self.prevent_recursion),
        ):
            if value or key in ext:
                ext[key] = value
        if self.selective_logic != "and_any" or "selectiveLogic" in ext:
            ext["selectiveLogic"] = _LOGIC.index(self.selective_logic)
        if self.probability < 100:
            ext.update(probability=_plain_number(self.probability), useProbability=True)
        elif _read_probability(ext) < 100:
            ext["probability"] = 100
        if self.depth is not None:
            ext.update(position=_ST_AT_DEPTH, depth=self.depth, role=_ROLES.index(self.role))
        elif ext.get("position") == _ST_AT_DEPTH:
            ext["position"] = 0 if self.placement == "before_char" else 1
        return ext


@dataclass(frozen=True)
class Lorebook:
    """A lorebook: its entries and the scan settings the spec gives a book."""

    entries: tuple[LoreEntry, ...]
    name: str = ""
    description: str | None = None
    scan_depth: int | None = None
    token_budget: int | None = None
    recursive_scanning: bool | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, name: str = "") -> Lorebook:
        """Build a book from a `character_book` object or a V3 `lorebook_v3` export.

        `name` is used when the book has none. Entries SillyTavern exported with
        `use_regex: true` and its own extension fields keep SillyTavern's key matching,
        because its exporter sets that flag on every entry, regex or not.
        """
        if raw.get("spec") == "lorebook_v3" and isinstance(raw.get("data"), Mapping):
            raw = raw["data"]
        notes: list[str] = []
        fix = _Repairs(notes, "book")
        entries_raw = raw.get("entries")
        if not isinstance(entries_raw, list):
            if entries_raw is not None:
                fix.note("entries", "a list")
            entries_raw = []
        entries: list[LoreEntry] = []
        for index, item in enumerate(entries_raw):
            if isinstance(item, Mapping):
                entries.append(LoreEntry.from_dict(item, notes))
            else:
                notes.append(f"Entry {index} is not an object and was skipped.")
        ext = raw.get("extensions")
        book_name = raw.get("name")
        return cls(
            entries=tuple(entries),
            name=book_name if isinstance(book_name, str) and book_name else name,
            description=raw.get("description") if isinstance(raw.get("description"), str) else None,
            scan_depth=_count(raw.get("scan_depth"), None),
            token_budget=_count(raw.get("token_budget"), None),
            recursive_scanning=_optional_bool(raw.get("recursive_scanning")),
            extensions=dict(ext) if isinstance(ext, Mapping) else {},
            extra={k: v for k, v in raw.items() if k not in _BOOK_FIELDS},
            notes=tuple(notes),
        )

    @classmethod
    def from_world_info(cls, raw: Mapping[str, Any], *, name: str = "") -> Lorebook:
        """Build a book from a SillyTavern World Info file (`{"entries": {uid: entry}}`)."""
        return cls.from_dict(world_info_to_character_book(raw, name=name))

    def to_dict(self) -> dict[str, Any]:
        """The spec's `character_book` object, with unknown fields kept."""
        out: dict[str, Any] = dict(self.extra)
        out.update(name=self.name, extensions=dict(self.extensions))
        optional = {
            "description": self.description,
            "scan_depth": self.scan_depth,
            "token_budget": self.token_budget,
            "recursive_scanning": self.recursive_scanning,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        out["entries"] = [entry.to_dict() for entry in self.entries]
        return out


class _Repairs:
    """Reads typed fields from a raw object, noting each one that had to be repaired."""

    def __init__(self, notes: list[str] | None, where: str) -> None:
        self._notes = notes if notes is not None else []
        self._where = where

    def note(self, key: str, expected: str) -> None:
        self._notes.append(f"In {self._where}, {key} should be {expected}; it was ignored.")

    def strings(self, raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
        value = raw.get(key)
        if isinstance(value, str):
            return (value,)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.note(key, "a list of strings")
            return ()
        kept = tuple(item for item in value if isinstance(item, str))
        if len(kept) != len(value):
            self.note(key, "a list of strings (some items were not)")
        return kept

    def text(self, raw: Mapping[str, Any], key: str) -> str:
        value = raw.get(key, "")
        if isinstance(value, str):
            return value
        if value is not None:
            self.note(key, "text")
        return ""

    def flag(self, raw: Mapping[str, Any], key: str, default: bool) -> bool:
        value = raw.get(key)
        if isinstance(value, bool):
            return value
        if value is not None:
            self.note(key, "true or false")
        return default

    def number(self, raw: Mapping[str, Any], key: str, default: float) -> float:
        value = _number(raw.get(key))
        if value is None:
            if raw.get(key) is not None:
                self.note(key, "a number")
            return default
        return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float (a book stored before import refused it)
        return None
    return number if number == number and abs(number) != float("inf") else None  # not NaN, not infinite


def _read_probability(extensions: Mapping[str, Any]) -> float:
    """SillyTavern's chance in percent; 100 when unset or when `useProbability` is false."""
    chance = _number(extensions.get("probability"))
    if chance is None or extensions.get("useProbability") is False:
        return 100.0
    return min(100.0, max(0.0, chance))


def _plain_number(value: float) -> int | float:
    return int(value) if value == int(value) else value


def _count(value: Any, default: int | None) -> int | None:
    number = _number(value)
    return max(0, int(number)) if number is not None and abs(number) < 1e9 else default


def _optional_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _position(value: Any) -> Position | None:
    return value if value in ("before_char", "after_char") else None


def _logic(value: Any) -> SelectiveLogic:
    return (
        _LOGIC[value]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 4
        else "and_any"
    )


def _role(value: Any) -> LoreRole:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 3:
        return _ROLES[value]
    return value if value in _ROLES else "system"
