"""A stored card becomes the Chat tab's prompt, end to end; the sidebar gallery lists every character."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.fake import FakeBackend
from engine.types import FinishReason
from presets.samplers import SamplerParams
from services.chat import logic
from services.chat import reply as chat_reply
from services.chat.characters import chat_persona, lock_persona, prompt_inputs
from services.chat.logic import ChatSettings, ChatView
from services.context import AppContext
from store.cards import import_card
from store.cards.png import PNG_SIGNATURE
from ui.chat import side as chat_side
from ui.chat.side import gallery_characters, gallery_items, placeholder_avatar

SETTINGS = ChatSettings(params=SamplerParams(max_new_tokens=16))


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def card_file() -> bytes:
    """A V2 card with a system prompt, post-history instructions, creator notes and a lorebook."""
    return as_json({
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Mira", "description": "Mira is {{user}}'s oldest friend, a lighthouse keeper.",
            "personality": "calm", "scenario": "A stormy night at the lighthouse.",
            "first_mes": "*Mira waves from the lighthouse door.*", "mes_example": "",
            "creator_notes": "CREATOR-NOTE-ONLY-FOR-HUMANS: works best with long replies.",
            "system_prompt": "CARD-SYSTEM: you play {{char}} and never speak for {{user}}.",
            "post_history_instructions": "CARD-AFTER-HISTORY: keep {{char}}'s reply under 100 words.",
            "alternate_greetings": [], "tags": ["lighthouse"], "creator": "tests", "character_version": "1",
            "extensions": {},
            "character_book": {"extensions": {}, "entries": [
                {"keys": ["lamp"], "content": "CARD-LORE: the lamp was lit in 1890.", "extensions": {},
                 "enabled": True, "insertion_order": 10, "id": 0, "name": "Lamp"},
            ]},
        },
    })  # fmt: skip


def world_book(key: str, lore: str) -> bytes:
    entry = {
        "keys": [key],
        "content": lore,
        "extensions": {},
        "enabled": True,
        "insertion_order": 5,
        "id": 0,
        "name": key,
    }
    return as_json({"name": lore.split(":")[0], "extensions": {}, "entries": [entry]})


def reply_prompt(ctx: AppContext, backend: FakeBackend, view: ChatView, message: str) -> str:
    """Send `message` and generate the reply as the Chat tab does; the prompt the model received."""
    view = logic.send(ctx, view, message, SETTINGS)
    run = chat_reply.start(ctx, view, "tester")
    finish = run.wait(10)
    assert finish is not None and finish.reason is FinishReason.STOP
    return backend.calls[-1].prompt


def test_a_stored_card_persona_and_world_books_make_the_prompt(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    imported = import_card(card_file(), "mira.json")
    character = fake_ctx.store.characters.create(imported)
    ann = fake_ctx.store.personas.create("Ann", "Ann is a sailor who fears the dark.")
    worlds = fake_ctx.store.worlds
    worlds.import_file(
        world_book("harbour", "WORLD-ON: the harbour freezes in winter."), "on.json", enabled=True
    )
    off = worlds.import_file(
        world_book("harbour", "WORLD-OFF: the harbour is haunted."), "off.json", enabled=True
    )
    worlds.set_enabled(off.id, False)

    view = logic.new_chat(fake_ctx, SETTINGS, character_id=character.id)
    lock_persona(fake_ctx, view.session_id, ann.id)
    assert chat_persona(fake_ctx, fake_ctx.store.sessions.get(view.session_id)).name == "Ann"

    quiet = reply_prompt(fake_ctx, fake_backend, view, "Good evening, how are you?")
    assert "WORLD-ON" not in quiet and "CARD-LORE" not in quiet  # keyed lore waits for its key

    prompt = reply_prompt(fake_ctx, fake_backend, view, "Is the harbour safe? And the lamp?")
    assert "Mira is Ann's oldest friend" in prompt  # {{user}} is the locked persona
    assert "Ann is a sailor who fears the dark." in prompt
    assert "\nAnn: Is the harbour safe? And the lamp?\n" in prompt  # the persona speaks the user's lines
    assert "{{user}}" not in prompt and "{{char}}" not in prompt
    assert "CARD-SYSTEM: you play Mira and never speak for Ann." in prompt
    assert "CARD-AFTER-HISTORY: keep Mira's reply under 100 words." in prompt
    assert prompt.index("CARD-AFTER-HISTORY") > prompt.index("Is the harbour safe?")  # after the chat
    assert prompt.index("CARD-SYSTEM") < prompt.index("Good evening")  # before it
    assert "WORLD-ON: the harbour freezes in winter." in prompt
    assert "CARD-LORE: the lamp was lit in 1890." in prompt
    assert "CREATOR-NOTE-ONLY-FOR-HUMANS" not in prompt
    assert "WORLD-OFF" not in prompt and "haunted" not in prompt

    saved = fake_ctx.store.sessions.messages(view.session_id)[-1]
    assert saved.role == "assistant" and sorted(saved.meta["lore"]) == ["Lamp", "harbour"]


def test_locking_a_persona_before_the_first_reply_greets_that_persona(fake_ctx: AppContext) -> None:
    card = json.loads(card_file())
    card["data"]["first_mes"] = "*Mira waves.* Welcome back, {{user}}!"
    card["data"]["alternate_greetings"] = ["{{user}}! You came."]
    character = fake_ctx.store.characters.create(import_card(as_json(card), "mira.json"))
    ann = fake_ctx.store.personas.create("Ann", "")
    bo = fake_ctx.store.personas.create("Bo", "")
    view = logic.new_chat(fake_ctx, SETTINGS, character_id=character.id)
    lock_persona(fake_ctx, view.session_id, ann.id)
    [first] = fake_ctx.store.sessions.messages(view.session_id)
    assert first.text == "*Mira waves.* Welcome back, Ann!" and first.swipes[1] == "Ann! You came."
    fake_ctx.store.sessions.update_message(
        view.session_id, replace(first, swipe_index=1, text=first.swipes[1])
    )
    lock_persona(fake_ctx, view.session_id, bo.id)  # the chosen greeting stays chosen
    [first] = fake_ctx.store.sessions.messages(view.session_id)
    assert (first.text, first.swipe_index) == ("Bo! You came.", 1)
    logic.send(fake_ctx, view, "Hello", SETTINGS)  # once the chat is under way, history stays
    lock_persona(fake_ctx, view.session_id, ann.id)
    assert fake_ctx.store.sessions.messages(view.session_id)[0].text == "Bo! You came."


def test_disabling_and_enabling_world_books_changes_the_books(fake_ctx: AppContext) -> None:
    character = fake_ctx.store.characters.create(import_card(card_file(), "mira.json"))
    book = fake_ctx.store.worlds.import_file(world_book("harbour", "WORLD: cold."), "w.json", enabled=False)
    view = logic.new_chat(fake_ctx, SETTINGS, character_id=character.id)

    def book_names() -> list[str]:
        session = fake_ctx.store.sessions.get(view.session_id)
        return [b.name for b in prompt_inputs(fake_ctx, session, "").books]

    assert book_names() == ["Mira"]  # the card's own book only
    fake_ctx.store.worlds.set_enabled(book.id, True)
    assert book_names() == ["Mira", "WORLD"]


# --- the sidebar gallery ---


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp dir of the test's own, and no placeholder written yet."""
    root = tmp_path / "temp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setattr(chat_side, "_placeholder", {})
    return root


def test_the_gallery_lists_characters_with_and_without_avatars(
    fake_ctx: AppContext, third_party: Path, temp_root: Path
) -> None:
    characters = fake_ctx.store.characters
    for name in ("cards/default_Seraphina.png", "cards/Aqua.json", "yaml/Example.yaml"):
        characters.create(import_card((third_party / name).read_bytes(), name))
    characters.create_blank("New character")
    html_name = as_json({"name": '<img src=x onerror="alert(1)">Eve', "description": "d", "first_mes": "hi"})
    characters.create(import_card(html_name, "eve.json"))

    items = gallery_items(fake_ctx, "")
    listed = gallery_characters(fake_ctx, "")
    captions = [caption for _picture, caption in items]
    assert [caption.split(" · ")[0] for caption in captions] == [s.name for s in listed]
    assert set(captions) >= {'<img src=x onerror="alert(1)">Eve', "Aqua", "Chiharu Yamada", "New character"}
    assert len(items) == 5  # every character, pictures or not
    placeholder = placeholder_avatar()
    for summary, (picture, _caption) in zip(listed, items, strict=True):
        expected = summary.avatar_path if summary.avatar_path is not None else placeholder
        assert Path(picture) == expected and Path(picture).is_file()
    seraphina = next(s for s in listed if s.name == "Seraphina")
    assert seraphina.avatar_path is not None  # the one card with a picture shows it
    assert items[listed.index(seraphina)][0] == str(seraphina.avatar_path)
    assert placeholder.read_bytes().startswith(PNG_SIGNATURE)
    assert placeholder.parent.parent == temp_root  # gradio serves files from the temp dir
    assert placeholder_avatar() == placeholder  # written once


def test_the_gallery_search_filters_by_name_and_tag(
    fake_ctx: AppContext, third_party: Path, temp_root: Path
) -> None:
    characters = fake_ctx.store.characters
    characters.create(import_card((third_party / "cards/default_Seraphina.png").read_bytes(), "s.png"))
    characters.create(import_card(card_file(), "mira.json"))
    characters.create_blank("Bob")
    assert [caption for _p, caption in gallery_items(fake_ctx, "seraph")][0].startswith("Seraphina")
    assert len(gallery_items(fake_ctx, "seraph")) == 1
    assert gallery_items(fake_ctx, "LIGHTHOUSE") == [(str(placeholder_avatar()), "Mira · lighthouse")]
    assert gallery_items(fake_ctx, "bob")[0][1] == "Bob"
    assert gallery_items(fake_ctx, "nobody") == []
    assert len(gallery_items(fake_ctx, "")) == 3


def test_a_lost_placeholder_is_written_again(temp_root: Path) -> None:
    first = placeholder_avatar()
    first.unlink()
    again = placeholder_avatar()
    assert again.is_file() and again.read_bytes().startswith(PNG_SIGNATURE)
