"""KoboldAI and Kobold Lite story saves: import every shape, export the one both read.

Three shapes come in (`import_story` tells them apart the way Lite does):

- **v1** (no `file_version`): KoboldAI 1.x and Kobold Lite. `prompt` is chunk 0,
  `actions` the rest; `memory`, `authorsnote`, `anotetemplate`, `worldinfo` (comma-joined
  keys) and Lite's extras (`anotestr`, `wisearchdepth`, `wiinsertlocation`, `savedsettings`…).
- **United v2** (`file_version: 2`), read by `store.stories.united`: every key list of
  every world-info entry is kept (Lite keeps only the first key).
- **Lite's compact share shape** (`ga`, `cm`, `ca`, `ct`, `cwi`, `ess`), import only.

Nothing is lost on a round trip. The keys Hearth does not model are kept verbatim in
`Story.extra` (per chunk and per world-info entry too) and written back on export, and
an unchanged value keeps its original spelling (see `fields.restore`). Export writes the
v1/Lite shape, which Lite and KoboldAI both read, or United's for a story imported from
it. Import is all or nothing: a bad file raises `StoryFormatError` and returns no story.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from store.errors import StoryFormatError
from store.stories import united
from store.stories.fields import (
    MAX_CHUNKS,
    MAX_TEXT_CHARS,
    MAX_WI_ENTRIES,
    as_flag,
    as_int,
    as_keys,
    as_list,
    as_object,
    as_probability,
    as_text,
    check_shape,
    decode_json,
    origin_of_action,
    restore,
    without,
)
from store.stories.model import (
    DEFAULT_AN_DEPTH,
    DEFAULT_AN_TEMPLATE,
    MAX_VERSIONS,
    Chunk,
    KoboldShape,
    Mode,
    Story,
    WIPlacement,
    WorldInfoEntry,
)

OPMODE_STORY = 1
OPMODE_ADVENTURE = 2
_LITE_IMAGE = re.compile(r"\[<\|[ph]\|.*?\|[ph]\|>\]", re.DOTALL)
_SHARE_KEYS = ("ga", "cm", "ca", "ct", "cwi", "ess")


def load_story_file(data: bytes | str, *, title: str = "") -> Story:
    """Import a save file's contents (JSON text or bytes). `title` names the story when
    the file has no title of its own (v1 saves do not; use the file name).

    Raises:
        StoryFormatError: the file is not a Kobold save, is damaged, or is over a limit.
    """
    return import_story(decode_json(data), title=title)


def import_story(obj: Any, *, title: str = "") -> Story:
    """Import an already parsed save (see `load_story_file`). The story keeps parts of
    `obj` as they are, so do not change `obj` afterwards."""
    if not isinstance(obj, Mapping):
        raise StoryFormatError("This file is not a Kobold story: a story save is a JSON object.")
    check_shape(obj)
    if "scenarioVersion" in obj or "lorebookVersion" in obj:
        raise StoryFormatError("This is a NovelAI scenario or lorebook, not a Kobold story save.")
    if obj.get("spec") in ("chara_card_v2", "chara_card_v3") or "first_mes" in obj:
        raise StoryFormatError("This is a character card, not a story; import it as a character.")
    if obj.get("file_version") is not None:
        version = obj.get("file_version")
        if version not in (2, "2"):
            raise StoryFormatError(
                f"This story save has file_version {version!r}; Hearth reads versions 1 and 2."
            )
        story = united.import_united(obj)
    elif "actions" not in obj and any(key in obj for key in _SHARE_KEYS):
        story = _import_share(obj)
    elif any(key in obj for key in ("prompt", "actions", "savedsettings")):
        story = _import_v1(obj)
    else:
        raise StoryFormatError(
            "This JSON has no prompt or actions, so it is not a KoboldAI or Kobold Lite story."
        )
    return story if story.title else replace(story, title=title)


def export_story(story: Story, shape: KoboldShape | None = None) -> dict[str, Any]:
    """The save JSON object for `story`: the v1/Lite shape, or United's (`shape="united"`;
    the default is the shape the story was imported in)."""
    exported = united.export_united(story) if (shape or story.kobold_shape) == "united" else _export_v1(story)
    return copy.deepcopy(exported)  # kept values are the story's own; a caller may change these


def dumps_story(story: Story, shape: KoboldShape | None = None) -> str:
    """`export_story` as JSON text, ready to write to a `.json` file."""
    return json.dumps(export_story(story, shape), ensure_ascii=False)


def to_plain_text(story: Story) -> str:
    """The story as plain text (what KoboldAI writes beside a save), without Lite's
    inline image markers."""
    return _LITE_IMAGE.sub("", story.full_text())


def story_from_text(text: str, *, title: str = "") -> Story:
    """A story whose prompt is a plain `.txt` file's text (Lite imports text files so)."""
    return Story(chunks=(Chunk(as_text(text, "text"), "prompt"),), title=title)


# ----- v1 / Lite -----

_V1_OWN = ("prompt", "actions", "actions_metadata", "memory", "authorsnote", "worldinfo")


def _import_v1(obj: Mapping[str, Any]) -> Story:
    prompt = as_text(obj.get("prompt"), '"prompt"')
    actions = as_list(obj.get("actions") if obj.get("actions") is not None else [], '"actions"', MAX_CHUNKS)
    metadata = dict(as_object(obj.get("actions_metadata", {}), '"actions_metadata"'))
    chunks = [Chunk(prompt, "prompt")]
    for i, raw in enumerate(actions):
        text = as_text(raw, f"action {i + 1}")
        chunks.append(_v1_chunk(text, metadata.pop(str(i), None), i))
    extra = without(obj, *_V1_OWN)
    if "actions_metadata" in obj:
        extra["actions_metadata"] = metadata  # entries for no action: kept, written back
    return _with_settings(
        Story(
            chunks=tuple(chunks),
            memory=as_text(obj.get("memory"), '"memory"'),
            authors_note=as_text(obj.get("authorsnote"), '"authorsnote"'),
            world_info=_lite_entries(obj.get("worldinfo", []), '"worldinfo"'),
            mode=_mode(obj),
            title=as_text(obj.get("story_name"), '"story_name"'),
            extra=extra,
        ),
        obj,
    )


def _v1_chunk(text: str, meta: Any, index: int) -> Chunk:
    """An action, with KoboldAI's `actions_metadata` entry: its "Alternative Text" items
    are earlier versions of the action."""
    if meta is None:
        return Chunk(text, origin_of_action(text))
    meta = as_object(meta, f"actions_metadata entry {index}")
    alternatives = meta.get("Alternative Text") or []
    items = as_list(alternatives, f"alternatives of action {index + 1}", MAX_CHUNKS)
    earlier = [
        as_text(item.get("Text"), f"an alternative of action {index + 1}")
        for item in items
        if isinstance(item, Mapping) and item.get("Text")
    ]
    earlier = [t for t in earlier if t != text][-(MAX_VERSIONS - 1) :]
    return Chunk(text, origin_of_action(text), earlier=tuple(earlier), extra=dict(meta))


def _with_settings(story: Story, obj: Mapping[str, Any]) -> Story:
    """Read the author's note template and Lite's depth/WI settings, when present."""
    template = obj.get("anotetemplate")
    return replace(
        story,
        authors_note_template=as_text(template, '"anotetemplate"') if template else DEFAULT_AN_TEMPLATE,
        authors_note_depth=_number(obj, "anotestr", DEFAULT_AN_DEPTH),
        wi_search_depth=_number(obj, "wisearchdepth", 0),
        wi_placement=_placement(obj.get("wiinsertlocation")),
    )


def _number(obj: Mapping[str, Any], key: str, default: int) -> int:
    raw = obj.get(key)
    return default if raw is None or raw == "" else as_int(raw, f'"{key}"', 0, MAX_TEXT_CHARS)


def _placement(raw: Any) -> WIPlacement:
    if raw is None or raw == "":
        return "after_memory"
    return "before_authors_note" if as_int(raw, '"wiinsertlocation"', 0, 1) == 1 else "after_memory"


def _mode(obj: Mapping[str, Any]) -> Mode:
    settings = obj.get("savedsettings")
    if isinstance(settings, Mapping) and settings.get("opmode") in (OPMODE_ADVENTURE, str(OPMODE_ADVENTURE)):
        return "adventure"
    return "story"


def _lite_entries(raw: Any, where: str) -> tuple[WorldInfoEntry, ...]:
    entries = as_list(raw if raw is not None else [], where, MAX_WI_ENTRIES)
    return tuple(_lite_entry(as_object(e, f"world-info entry {i + 1}"), i) for i, e in enumerate(entries))


def _lite_entry(raw: Mapping[str, Any], index: int) -> WorldInfoEntry:
    where = f"world-info entry {index + 1}"
    disabled = raw.get("widisabled")
    return WorldInfoEntry(
        keys=as_keys(raw.get("key"), f"{where} key"),
        secondary_keys=as_keys(raw.get("keysecondary"), f"{where} keysecondary"),
        anti_keys=as_keys(raw.get("keyanti"), f"{where} keyanti"),
        content=as_text(raw.get("content"), f"{where} content"),
        comment=as_text(raw.get("comment"), f"{where} comment"),
        selective=as_flag(raw.get("selective", False), f"{where} selective"),
        constant=as_flag(raw.get("constant", False), f"{where} constant"),
        probability=as_probability(raw.get("probability"), f"{where} probability"),
        enabled=not (disabled is not None and as_flag(disabled, f"{where} widisabled")),
        group=as_text(raw.get("wigroup"), f"{where} wigroup"),
        extra=without(raw, "content"),
    )


def _export_v1(story: Story) -> dict[str, Any]:
    # A United save's own keys (`file_version` above all) would make this file read as
    # United, and its folders are not KoboldAI's: they are left out of a Lite export.
    own = story.kobold_shape == "lite"
    extra = story.extra if own else {}
    actions = story.chunks[1:]
    kept = extra.get("actions_metadata")
    metadata = dict(kept) if isinstance(kept, Mapping) else {}
    for i, chunk in enumerate(actions):
        metadata[str(i)] = _action_metadata(chunk, own)
    template = story.authors_note_template
    location = 1 if story.wi_placement == "before_authors_note" else 0
    out: dict[str, Any] = {
        "gamestarted": extra.get("gamestarted", True),
        "prompt": story.prompt,
        "memory": story.memory,
        "authorsnote": story.authors_note,
        "anotetemplate": restore(extra, "anotetemplate", template, _template, str),
        "actions": [chunk.text for chunk in actions],
        "actions_metadata": metadata,
        "worldinfo": [_export_lite_entry(e, own) for e in story.world_info],
        "wifolders_d": extra.get("wifolders_d", {}),
        "wifolders_l": extra.get("wifolders_l", []),
        "anotestr": restore(extra, "anotestr", story.authors_note_depth_chars, _depth),
        "wisearchdepth": restore(extra, "wisearchdepth", story.wi_search_depth, _depth),
        "wiinsertlocation": restore(extra, "wiinsertlocation", location, _location),
        "savedsettings": _saved_settings(story),
    }
    if story.title or "story_name" in extra:
        out["story_name"] = story.title
    return {**out, **{k: v for k, v in extra.items() if k not in out}}


def _template(raw: Any, where: str) -> str:
    return as_text(raw, where) or DEFAULT_AN_TEMPLATE


def _depth(raw: Any, where: str) -> int:
    return as_int(raw, where, 0, MAX_TEXT_CHARS)


def _location(raw: Any, where: str) -> int:
    return as_int(raw, where, 0, 1)


def _action_metadata(chunk: Chunk, own_meta: bool) -> dict[str, Any]:
    """KoboldAI's entry for one action: its text if the save kept it, and every other
    version of the chunk as an "Alternative Text" item."""
    meta: dict[str, Any] = dict(chunk.extra) if own_meta else {}
    if meta.get("Selected Text"):  # Lite leaves it empty; KoboldAI fills it
        meta["Selected Text"] = chunk.text
    meta.setdefault("Selected Text", "")
    items = list(meta.get("Alternative Text") or [])
    present = {item.get("Text") for item in items if isinstance(item, Mapping)}
    for text in chunk.alternatives:
        if text not in present:
            items.append({"Text": text, "Pinned": False, "Previous Selection": True, "Edited": False})
    meta["Alternative Text"] = items
    return meta


def _saved_settings(story: Story) -> Any:
    """`savedsettings` with `opmode` telling Lite the mode. An imported block is kept
    as it was unless its mode is not the story's (Lite's chat and instruct modes, 3 and
    4, count as story)."""
    kept = story.extra.get("savedsettings") if story.kobold_shape == "lite" else None
    opmode = OPMODE_ADVENTURE if story.mode == "adventure" else OPMODE_STORY
    if isinstance(kept, Mapping):
        if _mode({"savedsettings": kept}) == story.mode:
            return kept
        return {**kept, "opmode": opmode}
    settings: dict[str, Any] = {"opmode": opmode}
    # Lite rewrites the instruct tags of a save whose settings lack this flag (old saves).
    settings["instruct_has_newlines"] = False
    if story.mode == "adventure":
        settings["adventure_switch_mode"] = 1  # start in "Action" input, as Lite's scenarios do
    return settings


def _export_lite_entry(entry: WorldInfoEntry, own: bool) -> dict[str, Any]:
    raw = entry.extra if own else {}
    out: dict[str, Any] = {
        "key": restore(raw, "key", entry.keys, as_keys, str),
        "keysecondary": restore(raw, "keysecondary", entry.secondary_keys, as_keys, str),
        "keyanti": restore(raw, "keyanti", entry.anti_keys, as_keys, str),
        "content": entry.content,
        "comment": restore(raw, "comment", entry.comment, as_text),
        "folder": raw.get("folder"),
        "selective": restore(raw, "selective", entry.selective, as_flag),
        "constant": restore(raw, "constant", entry.constant, as_flag),
        "probability": restore(raw, "probability", entry.probability, as_probability),
        "wigroup": restore(raw, "wigroup", entry.group, as_text),
        "widisabled": restore(raw, "widisabled", not entry.enabled, as_flag),
    }
    for name in ("key", "keysecondary", "keyanti"):
        if isinstance(out[name], tuple):  # changed or new: written as Lite's comma-joined text
            out[name] = ",".join(out[name])
    if raw:  # an imported KoboldAI 1.x entry gets Lite's extra fields only when they matter
        defaults = {"keyanti": "", "probability": 100, "wigroup": "", "widisabled": False}
        for name, default in defaults.items():
            if name not in raw and out[name] == default:
                del out[name]
    return {**out, **{k: v for k, v in raw.items() if k not in out}}


# ----- Lite's compact share shape -----


def _import_share(obj: Mapping[str, Any]) -> Story:
    texts = as_list(obj.get("ga") or [], '"ga"', MAX_CHUNKS)
    chunks = [
        Chunk(as_text(t, f"chunk {i + 1}"), "prompt" if i == 0 else origin_of_action(t))
        for i, t in enumerate(texts)
    ]
    extra = without(obj, *_SHARE_KEYS)
    if obj.get("ess"):
        extra["extrastopseq"] = obj["ess"]  # where a v1 save keeps it; Lite migrates it
    template = obj.get("ct")
    return Story(
        chunks=tuple(chunks),
        memory=as_text(obj.get("cm"), '"cm"'),
        authors_note=as_text(obj.get("ca"), '"ca"'),
        authors_note_template=as_text(template, '"ct"') if template else DEFAULT_AN_TEMPLATE,
        world_info=_lite_entries(obj.get("cwi") or [], '"cwi"'),
        mode=_mode(obj),
        extra=extra,
    )
