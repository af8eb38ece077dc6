"""KoboldAI United's native story save (`file_version: 2`).

United writes every story setting at the top level. The parts Hearth models are:
`prompt`, `memory`, `authornote`, `authornotetemplate`, `story_name`, `adventure`,
`actions` = `{action_count, actions: {"0": {"Selected Text", "Options", …}, …}}` and
`worldinfo_v2` = `{folders, entries: {uid: {key[], keysecondary[], content, …}}}`.
Every key list is kept whole (Lite keeps only the first key of each). Everything else,
down to each action's and entry's own keys, is kept in `extra` and written back.
Actions are written back numbered 0…n−1 in story order, as United numbers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store.errors import StoryFormatError
from store.stories.fields import (
    MAX_CHUNKS,
    MAX_WI_ENTRIES,
    as_flag,
    as_int,
    as_keys,
    as_list,
    as_object,
    as_probability,
    as_text,
    origin_of_action,
    restore,
    without,
)
from store.stories.model import DEFAULT_AN_TEMPLATE, MAX_VERSIONS, Chunk, Story, WorldInfoEntry

_OWN = ("prompt", "memory", "authornote", "actions", "worldinfo_v2")


def import_united(obj: Mapping[str, Any]) -> Story:
    """Read a United save. Raises `StoryFormatError` naming the first bad field."""
    box = as_object(obj.get("actions") or {}, '"actions"')
    items = as_object(box.get("actions") or {}, '"actions.actions"')
    if len(items) > MAX_CHUNKS:
        raise StoryFormatError(f"The story file has more than {MAX_CHUNKS:,} actions.")
    chunks = [Chunk(as_text(obj.get("prompt"), '"prompt"'), "prompt")]
    chunks += [_chunk(key, as_object(items[key], f"action {key}")) for key in sorted(items, key=_number)]
    wi_box = as_object(obj.get("worldinfo_v2") or {}, '"worldinfo_v2"')
    entries = as_object(wi_box.get("entries") or {}, '"worldinfo_v2.entries"')
    if len(entries) > MAX_WI_ENTRIES:
        raise StoryFormatError(f"The story file has more than {MAX_WI_ENTRIES:,} world-info entries.")
    extra = without(obj, *_OWN)
    if "actions" in obj:
        extra["actions"] = without(box, "actions")
    if "worldinfo_v2" in obj:
        extra["worldinfo_v2"] = without(wi_box, "entries")
    template = obj.get("authornotetemplate")
    return Story(
        chunks=tuple(chunks),
        memory=as_text(obj.get("memory"), '"memory"'),
        authors_note=as_text(obj.get("authornote"), '"authornote"'),
        authors_note_template=as_text(template, '"authornotetemplate"') if template else DEFAULT_AN_TEMPLATE,
        world_info=tuple(_entry(uid, as_object(e, f"world-info entry {uid}")) for uid, e in entries.items()),
        title=as_text(obj.get("story_name"), '"story_name"'),
        mode="adventure" if as_flag(obj.get("adventure", False), '"adventure"') else "story",
        kobold_shape="united",
        extra=extra,
    )


def _number(key: str) -> int:
    return as_int(key, f"action number {key!r}", 0, 10**9)


def _chunk(key: str, action: Mapping[str, Any]) -> Chunk:
    """One action. Its "Options" (other generations, earlier picks) are its versions."""
    text = as_text(action.get("Selected Text"), f'action {key} "Selected Text"')
    options = as_list(action.get("Options") or [], f'action {key} "Options"', MAX_CHUNKS)
    earlier = [
        as_text(option.get("text"), f"an option of action {key}")
        for option in options
        if isinstance(option, Mapping) and option.get("text")
    ]
    earlier = [t for t in earlier if t != text][-(MAX_VERSIONS - 1) :]
    return Chunk(text, origin_of_action(text), earlier=tuple(earlier), extra=without(action, "Selected Text"))


def _entry(uid: str, raw: Mapping[str, Any]) -> WorldInfoEntry:
    where = f"world-info entry {uid}"
    secondary = as_keys(raw.get("keysecondary"), f"{where} keysecondary")
    disabled = raw.get("widisabled")
    extra = without(raw, "content")
    if "uid" not in extra and uid.isdigit():
        extra["uid"] = int(uid)  # the entry's key in the file; written back as its key
    return WorldInfoEntry(
        keys=as_keys(raw.get("key"), f"{where} key"),
        secondary_keys=secondary,
        anti_keys=as_keys(raw.get("keyanti"), f"{where} keyanti"),
        content=as_text(raw.get("content"), f"{where} content"),
        comment=as_text(raw.get("comment"), f"{where} comment"),
        # United sets `selective` whenever secondary keys exist.
        selective=as_flag(raw.get("selective", bool(secondary)), f"{where} selective"),
        constant=as_flag(raw.get("constant", False), f"{where} constant"),
        probability=as_probability(raw.get("probability"), f"{where} probability"),
        enabled=not (disabled is not None and as_flag(disabled, f"{where} widisabled")),
        group=as_text(raw.get("wigroup"), f"{where} wigroup"),
        extra=extra,
    )


def export_united(story: Story) -> dict[str, Any]:
    """The United save for `story`. A story imported from another shape keeps none of
    that shape's extra keys here (they mean nothing to United)."""
    own = story.kobold_shape == "united"
    extra = story.extra if own else {}
    actions = {str(i): _export_action(chunk, own) for i, chunk in enumerate(story.chunks[1:])}
    kept_box = extra.get("actions")
    box = dict(kept_box) if isinstance(kept_box, Mapping) else {}
    # United's action_count is the number of the newest action (-1 with none).
    box["action_count"] = restore(box, "action_count", len(actions) - 1, _action_count)
    box["actions"] = actions
    kept_wi = extra.get("worldinfo_v2")
    wi_box = dict(kept_wi) if isinstance(kept_wi, Mapping) else {"folders": {"root": []}}
    wi_box["entries"] = _export_entries(story.world_info, own)
    template = story.authors_note_template
    out: dict[str, Any] = {
        "file_version": extra.get("file_version", 2),
        "prompt": story.prompt,
        "memory": story.memory,
        "authornote": story.authors_note,
        "authornotetemplate": restore(extra, "authornotetemplate", template, _template, str),
        "actions": box,
        "worldinfo_v2": wi_box,
        "story_name": story.title,
    }
    if story.mode == "adventure" or "adventure" in extra:
        out["adventure"] = restore(extra, "adventure", story.mode == "adventure", as_flag)
    return {**out, **{k: v for k, v in extra.items() if k not in out}}


def _action_count(raw: Any, where: str) -> int:
    return as_int(raw, where, -1, 10**9)


def _template(raw: Any, where: str) -> str:
    return as_text(raw, where) or DEFAULT_AN_TEMPLATE


def _export_action(chunk: Chunk, own: bool) -> dict[str, Any]:
    action: dict[str, Any] = {"Selected Text": chunk.text, **(chunk.extra if own else {})}
    options = list(action.get("Options") or [])
    present = {option.get("text") for option in options if isinstance(option, Mapping)}
    for text in chunk.alternatives:
        if text not in present:
            options.append({"text": text, "Pinned": False, "Previous Selection": True, "Edited": False})
    action["Options"] = options
    return action


def _export_entries(entries: tuple[WorldInfoEntry, ...], own: bool) -> dict[str, dict[str, Any]]:
    kept = [e.extra.get("uid") if own else None for e in entries]
    taken = {uid for uid in kept if isinstance(uid, int) and not isinstance(uid, bool)}
    next_uid = max(taken, default=-1) + 1
    out: dict[str, dict[str, Any]] = {}
    for entry, uid in zip(entries, kept, strict=True):
        if not isinstance(uid, int) or isinstance(uid, bool) or str(uid) in out:
            uid, next_uid = next_uid, next_uid + 1
        out[str(uid)] = _export_entry(entry, uid, own)
    return out


def _export_entry(entry: WorldInfoEntry, uid: int, own: bool) -> dict[str, Any]:
    raw = entry.extra if own else {}
    title = entry.comment or (entry.keys[0] if entry.keys else f"Entry {uid}")
    item: dict[str, Any] = {
        "uid": uid,
        "title": raw.get("title", title),  # United needs a title (or a first key) to load
        "key": _keys(raw, "key", entry.keys),
        "keysecondary": _keys(raw, "keysecondary", entry.secondary_keys),
        "folder": raw.get("folder", "root"),
        "constant": restore(raw, "constant", entry.constant, as_flag),
        "content": entry.content,
        "comment": restore(raw, "comment", entry.comment, as_text),
        "type": raw.get("type", "wi"),
        "selective": restore(raw, "selective", entry.selective, as_flag),
    }
    # United loads `manual_text` in preference to `content`; keep them in step.
    if "manual_text" in raw and not raw.get("use_wpp"):
        item["manual_text"] = entry.content
    if entry.anti_keys or "keyanti" in raw:
        item["keyanti"] = _keys(raw, "keyanti", entry.anti_keys)
    if entry.probability != 100 or "probability" in raw:
        item["probability"] = restore(raw, "probability", entry.probability, as_probability)
    if not entry.enabled or "widisabled" in raw:
        item["widisabled"] = restore(raw, "widisabled", not entry.enabled, as_flag)
    if entry.group or "wigroup" in raw:
        item["wigroup"] = restore(raw, "wigroup", entry.group, as_text)
    return {**item, **{k: v for k, v in raw.items() if k not in item}}


def _keys(raw: Mapping[str, Any], name: str, keys: tuple[str, ...]) -> Any:
    """A key list as the file spelled it if unchanged, else as a plain list."""
    kept = restore(raw, name, keys, as_keys, list)
    return list(kept) if isinstance(kept, tuple) else kept
