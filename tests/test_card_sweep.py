"""Every card field Hearth reads, set to every kind of hostile value: the card is refused
with a plain message, or it imports and its chat opens and builds a prompt.

A card that imports must never break its chat later ("Something went wrong inside
Hearth"). So for each field (the V1 and V2/V3 fields, the lorebook's, and the
extensions Hearth interprets) and each value, the card is imported, stored, given a
chat, and that chat is opened, shown, edited and prompted through the functions the
Chat tab calls.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from engine.errors import ContextOverflowError
from engine.fake import FakeBackend
from presets.samplers import SamplerParams
from services.chat import character_edit, logic
from services.chat import reply as chat_reply
from services.chat.characters import sheet_from_card, speaker_names
from services.chat.logic import ChatSettings
from services.context import AppContext
from store.cards import CharacterCard, export_json, import_card, read_depth_prompt
from store.cards.extensions import MAX_DEPTH
from store.errors import CardFormatError

FULL = bool(os.environ.get("HEARTH_RELIABILITY_ROUNDS"))
V3_ONLY = {"nickname", "creator_notes_multilingual", "source", "group_only_greetings", "creation_date",
           "modification_date", "assets"}  # fmt: skip
SETTINGS = ChatSettings(params=SamplerParams(max_new_tokens=8))
USER_LINE = "Tell me about the lamp and the harbour, {{char}}."

HOSTILE: list[Any] = [
    None, True, False, 0, -1, 1, 7, 2**31, -(2**63), 10**20, 10**300, 10**400, -(10**400),
    0.5, -0.0, 4.0, 1e308, -1e308, "", " ", "0", "4", "-4", "+12", " 3 ", "4abc", "0x10", "1e5",
    "NaN", "Infinity", "-Infinity", "nan", "１２", "9" * 5_000, "x" * 100_000,
    [], [1, "a", None], [[[[]]]], {}, {"a": {"b": [1, None]}}, {"prompt": 1},
    "\u202e\u200b\ufeff", "\x00\x07", "e\u0301" * 3, "😀" * 50, "<START>", "{{", "}}{{char}}{{",
    "{{random::a,b}}{{roll:1d999999999}}{{pick::x}}", "{{original}}{{user}}",
    "/[a-z+/", "/(a+)+$/", "system", "User", "ASSISTANT", "@@depth 0",
]  # fmt: skip

# Every field Hearth reads from a V2/V3 card (the path under `data`); extensions too.
DATA_FIELDS: list[tuple[Any, ...]] = [
    ("name",), ("description",), ("personality",), ("scenario",), ("first_mes",), ("mes_example",),
    ("creator_notes",), ("system_prompt",), ("post_history_instructions",), ("alternate_greetings",),
    ("alternate_greetings", 0), ("tags",), ("tags", 0), ("creator",), ("character_version",),
    ("nickname",), ("creator_notes_multilingual",), ("creator_notes_multilingual", "en"), ("source",),
    ("group_only_greetings",), ("creation_date",), ("modification_date",), ("assets",), ("assets", 0),
    ("assets", 0, "uri"), ("assets", 0, "type"), ("assets", 0, "ext"),
    ("extensions",), ("extensions", "depth_prompt"), ("extensions", "depth_prompt", "prompt"),
    ("extensions", "depth_prompt", "depth"), ("extensions", "depth_prompt", "role"),
    ("extensions", "talkativeness"), ("extensions", "fav"), ("extensions", "world"),
    ("character_book",), ("character_book", "name"), ("character_book", "description"),
    ("character_book", "scan_depth"), ("character_book", "token_budget"),
    ("character_book", "recursive_scanning"), ("character_book", "extensions"), ("character_book", "entries"),
    ("character_book", "entries", 0),
    *[
        ("character_book", "entries", 0, key)
        for key in (
            "keys", "content", "extensions", "enabled", "insertion_order", "case_sensitive", "name",
            "priority", "id", "comment", "selective", "secondary_keys", "constant", "position", "use_regex",
        )
    ],
    ("character_book", "entries", 0, "keys", 0),
    *[
        ("character_book", "entries", 1, "extensions", key)
        for key in (
            "position", "depth", "role", "probability", "useProbability", "selectiveLogic", "scan_depth",
            "case_sensitive", "match_whole_words", "exclude_recursion", "prevent_recursion", "display_index",
        )
    ],
]  # fmt: skip
# Fields of V1 cards, Pygmalion JSON and text-generation-webui YAML.
FLAT_FIELDS = [
    "name", "description", "personality", "scenario", "first_mes", "mes_example",
    "char_name", "char_persona", "world_scenario", "char_greeting", "example_dialogue", "context", "greeting",
]  # fmt: skip


def base_card(spec: str) -> dict[str, Any]:
    """A card that uses everything: greetings, examples, a depth prompt, lore of every kind."""
    entry = {
        "keys": ["lamp"], "content": "LORE-LAMP", "extensions": {}, "enabled": True, "insertion_order": 1,
        "id": 0, "name": "Lamp", "secondary_keys": ["light"], "selective": False, "position": "before_char",
    }  # fmt: skip
    at_depth = {
        "position": 4, "depth": 2, "role": 1, "probability": 100, "useProbability": True, "selectiveLogic": 0,
        "display_index": 1, "scan_depth": 4,
    }  # fmt: skip
    deep = {
        "keys": ["/harb(our|or)/i"], "content": "LORE-DEEP", "enabled": True, "insertion_order": 2, "id": 1,
        "use_regex": True, "extensions": at_depth,
    }  # fmt: skip
    data = {
        "name": "Mira", "description": "{{char}} keeps the lighthouse.", "personality": "calm",
        "scenario": "A storm.", "first_mes": "Hello {{user}}.",
        "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hey",
        "creator_notes": "notes", "system_prompt": "SYS {{original}}", "post_history_instructions": "PHI",
        "alternate_greetings": ["Hi again."], "tags": ["sea"], "creator": "tests", "character_version": "1",
        "extensions": {
            "depth_prompt": {"prompt": "DEPTH-NOTE", "depth": 1, "role": "system"}, "talkativeness": "0.5",
        },
        "character_book": {
            "name": "Book", "extensions": {}, "entries": [entry, deep], "scan_depth": 5, "token_budget": 500,
            "recursive_scanning": True,
        },
        "nickname": "Mi", "creator_notes_multilingual": {"en": "hi"}, "source": ["x"],
        "group_only_greetings": [], "creation_date": 1_700_000_000, "modification_date": 1_700_000_000,
        "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
    }  # fmt: skip
    version = "3.0" if spec == "chara_card_v3" else "2.0"
    return {"spec": spec, "spec_version": version, "data": data}


def with_value(card: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(card)
    target = out["data"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = copy.deepcopy(value)
    return out


def imported_or_refused(data: bytes, name: str) -> CharacterCard | None:
    """The property at import: a card, or a plain `CardFormatError`; nothing else."""
    try:
        return import_card(data, name).card
    except CardFormatError as err:
        assert str(err).startswith("Could not import") and "Traceback" not in str(err)
        return None


def use_in_a_chat(ctx: AppContext, card_bytes: bytes, name: str, *, reply: bool = False) -> bool:
    """Import the card and do what a user does with it; False when the import refused it."""
    imported = imported_or_refused(card_bytes, name)
    if imported is None:
        return False
    character = ctx.store.characters.create(import_card(card_bytes, name))
    stored = ctx.store.characters.get(character.id).card
    values = character_edit.field_values(stored)  # the editor opens...
    try:
        ctx.store.characters.save(character.id, character_edit.apply_fields(stored, values))  # ...and saves
    except CardFormatError as err:
        assert str(err) == "A character needs a name."  # a nameless card: the user must give one
    export_json(ctx.store.characters.get(character.id).card, now=0)
    view = logic.new_chat(ctx, SETTINGS, character_id=character.id)
    view = logic.send(ctx, view, USER_LINE, SETTINGS)
    view = logic.open_chat(ctx, view.session_id)  # open the chat again, as from the list
    logic.visible_history(ctx, view)
    speaker_names(ctx, ctx.store.sessions.get(view.session_id))
    assert chat_reply.context_status(ctx, view).startswith("Context:")
    try:
        prepared = chat_reply.build_prompt(ctx, view)
    except ContextOverflowError:  # a plain message: the card is longer than the context
        pass
    else:
        assert "Tell me about the lamp" in prepared.request.prompt
        if reply:
            run = chat_reply.start(ctx, view, "sweep")  # a reply runs and is saved
            assert run.wait(10) is not None
    ctx.store.characters.delete(character.id)
    return True


@pytest.fixture
def sweep(fake_ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(os, "fsync", lambda _fd: None)  # crash safety is tested elsewhere; this is speed
    yield lambda card_bytes, name: use_in_a_chat(fake_ctx, card_bytes, name)


def specs_for(path: tuple[Any, ...], index: int) -> tuple[str, ...]:
    """V3 always; V2 too for a third of the values (all of them with HEARTH_RELIABILITY_ROUNDS),
    and always where the specs read a field differently."""
    spec_sensitive = path[0] in V3_ONLY or path[-1] == "use_regex"
    if FULL or spec_sensitive or index % 3 == 0:
        return ("chara_card_v3", "chara_card_v2")
    return ("chara_card_v3",)


def test_the_base_cards_work_in_a_chat(fake_ctx: AppContext, fake_backend: FakeBackend) -> None:
    for spec in ("chara_card_v2", "chara_card_v3"):
        assert use_in_a_chat(fake_ctx, json.dumps(base_card(spec)).encode(), "base.json", reply=True)
        prompt = fake_backend.calls[-1].prompt
        assert "DEPTH-NOTE" in prompt and "LORE-LAMP" in prompt and "LORE-DEEP" in prompt


@pytest.mark.parametrize("path", DATA_FIELDS, ids=lambda path: ".".join(map(str, path)))
def test_every_card_field_with_every_hostile_value(sweep: Any, path: tuple[Any, ...]) -> None:
    imported = 0
    for index, value in enumerate(HOSTILE):
        for spec in specs_for(path, index):
            card = with_value(base_card(spec), path, value)
            imported += sweep(json.dumps(card).encode(), "sweep.json")
    assert imported  # at least the harmless values import


@pytest.mark.parametrize("field", FLAT_FIELDS)
def test_every_flat_card_field_with_every_hostile_value(sweep: Any, field: str) -> None:
    for value in HOSTILE:
        card = {"name": "Flat", "description": "d", "first_mes": "Hi", field: value}
        sweep(json.dumps(card).encode(), "flat.json")
        yaml_card = {"name": "Flat", "context": "c", "greeting": "Hi", field: value}
        sweep(yaml.safe_dump(yaml_card, allow_unicode=True).encode(), "flat.yaml")


@pytest.mark.parametrize("value", HOSTILE, ids=lambda value: repr(value)[:20])
def test_a_depth_prompt_is_read_whatever_it_holds(value: Any) -> None:
    # A stored card may predate the check at import: reading must still work.
    for extensions in (
        {"depth_prompt": value},
        {"depth_prompt": {"prompt": "P", "depth": value, "role": value}},
        {"depth_prompt": {"prompt": value, "depth": 3}},
        value,
    ):
        note = read_depth_prompt(extensions)
        assert note is None or (0 <= note.depth <= MAX_DEPTH and note.role in ("system", "user", "assistant"))
        card = CharacterCard(name="x", extensions=extensions if isinstance(extensions, dict) else {})
        sheet_from_card(card)


@pytest.mark.parametrize(
    ("depth", "used", "noted"),
    [
        (2, 2, False), ("2", 2, False), (" 3 ", 3, False), (4.0, 4, False), (None, 4, False),
        ("7abc", 7, True), (2.9, 2, True), ("abc", 4, True), ("NaN", 4, True), (True, 4, True),
        ([1], 4, True), ({}, 4, True), (-3, 0, True), ("-3", 0, True), (10**20, MAX_DEPTH, True),
        ("9" * 5_000, MAX_DEPTH, True), ("１２", 4, True),
    ],
)  # fmt: skip
def test_a_bad_depth_is_read_as_sillytavern_reads_it_with_a_note(depth: Any, used: int, noted: bool) -> None:
    card = base_card("chara_card_v2")
    card["data"]["extensions"] = {"depth_prompt": {"prompt": "P", "depth": depth, "role": "user"}, "x": [1]}
    imported = import_card(json.dumps(card).encode(), "depth.json")
    stored = depth if depth is None else used  # null stays null: read as the default
    expected = {"depth_prompt": {"prompt": "P", "depth": stored, "role": "user"}, "x": [1]}
    assert imported.card.extensions == expected
    assert any("depth prompt depth" in warning for warning in imported.warnings) == noted
    assert read_depth_prompt(imported.card.extensions) == read_depth_prompt(
        {"depth_prompt": {"prompt": "P", "depth": depth, "role": "user"}}
    )


def test_bad_depth_prompt_parts_are_normalised_with_notes_and_the_rest_kept() -> None:
    card = base_card("chara_card_v3")
    card["data"]["extensions"] = {
        "depth_prompt": {"prompt": ["not", "text"], "depth": "2", "role": "narrator", "extra": 1},
        "talkativeness": {"odd": True},  # not read by Hearth: kept as it is, no note
        "other_app": {"nested": [1, 2]},
    }
    imported = import_card(json.dumps(card).encode(), "odd.json")
    assert imported.card.extensions == {
        "depth_prompt": {"prompt": "", "depth": 2, "role": "system", "extra": 1},
        "talkativeness": {"odd": True},
        "other_app": {"nested": [1, 2]},
    }
    assert [w.split(" {")[0].split(" [")[0].split(" '")[0] for w in imported.warnings] == [
        "The card's depth prompt text",
        "The card's depth prompt role",
    ]
    assert read_depth_prompt(imported.card.extensions) is None  # no text: no note in the prompt

    card["data"]["extensions"] = {"depth_prompt": "write more"}
    imported = import_card(json.dumps(card).encode(), "odd.json")
    assert imported.card.extensions == {} and "is not an object" in imported.warnings[0]

    card["data"]["extensions"] = {"depth_prompt": {"prompt": "x" * 1_000_001}}
    with pytest.raises(CardFormatError, match="depth_prompt.prompt is too long"):
        import_card(json.dumps(card).encode(), "long.json")


def test_a_depth_prompt_stored_before_the_check_still_works_in_a_chat(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    card_file = json.dumps(base_card("chara_card_v2")).encode()
    character = fake_ctx.store.characters.create(import_card(card_file, "a.json"))
    card = fake_ctx.store.characters.get(character.id).card
    card.extensions = {"depth_prompt": {"prompt": "OLD-NOTE", "depth": "deep", "role": ["user"]}}
    fake_ctx.store.characters.save(character.id, card)  # written as it is, like an old record
    view = logic.new_chat(fake_ctx, SETTINGS, character_id=character.id)
    view = logic.send(fake_ctx, view, "Hello", SETTINGS)
    prompt = chat_reply.build_prompt(fake_ctx, view).request.prompt
    assert "OLD-NOTE" in prompt
