"""The exact shape a `Story` is stored in, and the conversions (`story_to_dict` / `story_from_dict`).

The record carries `schema`; a record from a newer Hearth is refused rather than
misread, and a damaged one raises `StoreCorruptError` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, TypeVar

from store.errors import SchemaTooNewError, StoreCorruptError
from store.stories.model import (
    DEPTH_UNITS,
    KOBOLD_SHAPES,
    MODES,
    ORIGINS,
    WI_PLACEMENTS,
    Chunk,
    Story,
    WorldInfoEntry,
)

STORY_SCHEMA = 1

T = TypeVar("T")


class ChunkRecord(TypedDict):
    text: str
    origin: str
    earlier: list[str]
    later: list[str]
    extra: dict[str, Any]


class WorldInfoRecord(TypedDict):
    keys: list[str]
    secondary_keys: list[str]
    anti_keys: list[str]
    content: str
    comment: str
    selective: bool
    constant: bool
    probability: int
    enabled: bool
    group: str
    extra: dict[str, Any]


class StoryRecord(TypedDict):
    schema: int
    title: str
    mode: str
    memory: str
    authors_note: str
    authors_note_template: str
    authors_note_depth: int
    authors_note_unit: str
    wi_placement: str
    wi_search_depth: int
    chunks: list[ChunkRecord]
    redo_stack: list[ChunkRecord]
    world_info: list[WorldInfoRecord]
    kobold_shape: str
    extra: dict[str, Any]


def story_to_dict(story: Story) -> StoryRecord:
    return {
        "schema": STORY_SCHEMA,
        "title": story.title,
        "mode": story.mode,
        "memory": story.memory,
        "authors_note": story.authors_note,
        "authors_note_template": story.authors_note_template,
        "authors_note_depth": story.authors_note_depth,
        "authors_note_unit": story.authors_note_unit,
        "wi_placement": story.wi_placement,
        "wi_search_depth": story.wi_search_depth,
        "chunks": [_chunk_to_dict(c) for c in story.chunks],
        "redo_stack": [_chunk_to_dict(c) for c in story.redo_stack],
        "world_info": [_entry_to_dict(e) for e in story.world_info],
        "kobold_shape": story.kobold_shape,
        "extra": dict(story.extra),
    }


def _chunk_to_dict(chunk: Chunk) -> ChunkRecord:
    return {
        "text": chunk.text,
        "origin": chunk.origin,
        "earlier": list(chunk.earlier),
        "later": list(chunk.later),
        "extra": dict(chunk.extra),
    }


def _entry_to_dict(entry: WorldInfoEntry) -> WorldInfoRecord:
    return {
        "keys": list(entry.keys),
        "secondary_keys": list(entry.secondary_keys),
        "anti_keys": list(entry.anti_keys),
        "content": entry.content,
        "comment": entry.comment,
        "selective": entry.selective,
        "constant": entry.constant,
        "probability": entry.probability,
        "enabled": entry.enabled,
        "group": entry.group,
        "extra": dict(entry.extra),
    }


def story_from_dict(data: Mapping[str, Any]) -> Story:
    """Rebuild a story from its record.

    Raises:
        SchemaTooNewError: the record was written by a newer Hearth.
        StoreCorruptError: a field is missing or has the wrong type.
    """
    if not isinstance(data, Mapping):
        raise StoreCorruptError("A stored story is not a JSON object.")
    schema = _get(data, "schema", int, "story")
    if schema > STORY_SCHEMA:
        raise SchemaTooNewError(
            f"This story was saved by a newer Hearth (story schema {schema}); update Hearth to open it."
        )
    return Story(
        chunks=tuple(_chunk(c, "story chunk") for c in _get(data, "chunks", list, "story")),
        memory=_get(data, "memory", str, "story"),
        authors_note=_get(data, "authors_note", str, "story"),
        authors_note_template=_get(data, "authors_note_template", str, "story"),
        authors_note_depth=_count(data, "authors_note_depth", "story"),
        # Added after the first stories were saved; those counted characters.
        authors_note_unit=_choice(
            {"authors_note_unit": "characters", **data}, "authors_note_unit", DEPTH_UNITS
        ),
        world_info=tuple(_entry(e) for e in _get(data, "world_info", list, "story")),
        wi_placement=_choice(data, "wi_placement", WI_PLACEMENTS),
        wi_search_depth=_count(data, "wi_search_depth", "story"),
        title=_get(data, "title", str, "story"),
        mode=_choice(data, "mode", MODES),
        redo_stack=tuple(_chunk(c, "redo chunk") for c in _get(data, "redo_stack", list, "story")),
        kobold_shape=_choice(data, "kobold_shape", KOBOLD_SHAPES),
        extra=_get(data, "extra", dict, "story"),
    )


def _chunk(data: Any, where: str) -> Chunk:
    if not isinstance(data, Mapping):
        raise StoreCorruptError(f"A stored {where} is not a JSON object.")
    return Chunk(
        text=_get(data, "text", str, where),
        origin=_choice(data, "origin", ORIGINS),
        earlier=_texts(data, "earlier", where),
        later=_texts(data, "later", where),
        extra=_get(data, "extra", dict, where),
    )


def _entry(data: Any) -> WorldInfoEntry:
    where = "world-info entry"
    if not isinstance(data, Mapping):
        raise StoreCorruptError(f"A stored {where} is not a JSON object.")
    return WorldInfoEntry(
        keys=_texts(data, "keys", where),
        secondary_keys=_texts(data, "secondary_keys", where),
        anti_keys=_texts(data, "anti_keys", where),
        content=_get(data, "content", str, where),
        comment=_get(data, "comment", str, where),
        selective=_get(data, "selective", bool, where),
        constant=_get(data, "constant", bool, where),
        probability=_get(data, "probability", int, where),
        enabled=_get(data, "enabled", bool, where),
        group=_get(data, "group", str, where),
        extra=_get(data, "extra", dict, where),
    )


def _get(data: Mapping[str, Any], key: str, kind: type[T], where: str) -> T:
    value = data.get(key)
    # bool is an int subclass; a stored true must not pass for a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise StoreCorruptError(f"A stored {where} has no valid {key!r} ({kind.__name__} expected).")
    return value


def _count(data: Mapping[str, Any], key: str, where: str) -> int:
    value = _get(data, key, int, where)
    if value < 0:
        raise StoreCorruptError(f"A stored {where} has a negative {key!r}.")
    return value


def _texts(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = _get(data, key, list, where)
    if not all(isinstance(item, str) for item in items):
        raise StoreCorruptError(f"A stored {where} has a {key!r} list that is not all text.")
    return tuple(items)


def _choice(data: Mapping[str, Any], key: str, allowed: tuple[T, ...]) -> T:
    value = data.get(key)
    if value not in allowed:
        raise StoreCorruptError(f"A stored story has an unknown {key!r}: {value!r}.")
    return value
