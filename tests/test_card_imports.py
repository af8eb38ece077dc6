"""Importing a card twice, and whose chat an imported SillyTavern chat is."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from services.chat import imports
from services.context import AppContext
from store.cards import import_card
from store.characters import CharacterSummary
from store.chats import import_chat
from ui.chat import side as chat_side
from ui.chat.side import gallery_items


def card(third_party: Path, name: str) -> bytes:
    return (third_party / "cards" / name).read_bytes()


def add(ctx: AppContext, third_party: Path, name: str) -> CharacterSummary:
    return ctx.store.characters.create(import_card(card(third_party, name), name))


def test_importing_the_same_card_again_opens_the_one_already_there(
    fake_ctx: AppContext, third_party: Path
) -> None:
    first = imports.import_character(fake_ctx, import_card(card(third_party, "Aqua.png"), "Aqua.png"))
    again = imports.import_character(fake_ctx, import_card(card(third_party, "Aqua.png"), "Aqua (1).png"))
    assert not first.existing and again.existing
    assert again.character.id == first.character.id
    assert [s.name for s in fake_ctx.store.characters.list()] == ["Aqua"]
    # The same card as JSON (no picture) is another character; and an edited Aqua is not the file.
    stored = fake_ctx.store.characters.get(first.character.id)
    fake_ctx.store.characters.save(first.character.id, replace(stored.card, personality="edited"))
    edited = imports.import_character(fake_ctx, import_card(card(third_party, "Aqua.png"), "Aqua.png"))
    assert not edited.existing and edited.character.id != first.character.id


def test_characters_sharing_a_name_are_numbered_in_the_lists(fake_ctx: AppContext, third_party: Path) -> None:
    aqua = card(third_party, "Aqua.png")
    first = fake_ctx.store.characters.create(import_card(aqua, "Aqua.png"))
    second = fake_ctx.store.characters.create(import_card(card(third_party, "Aqua.json"), "Aqua.json"))
    other = add(fake_ctx, third_party, "test-card.json")
    labels = imports.character_labels(fake_ctx.store.characters.list())
    assert labels == {first.id: "Aqua", second.id: "Aqua (2)", other.id: other.name}
    dropdown = chat_side.character_values(fake_ctx, chat_side.ChatView())[0]
    assert [label for label, _ in dropdown["choices"]][1:3] == ["Aqua", "Aqua (2)"]
    assert sorted(caption.split(" · ")[0] for _, caption in gallery_items(fake_ctx, "aqua")) == [
        "Aqua",
        "Aqua (2)",
    ]
    # The card keeps its name: it is what the model is told.
    assert fake_ctx.store.characters.get(second.id).card.name == "Aqua"


def test_an_imported_chat_goes_to_the_character_its_file_names(
    fake_ctx: AppContext, third_party: Path
) -> None:
    aqua = fake_ctx.store.characters.create(import_card(card(third_party, "Aqua.png"), "Aqua.png"))
    other = add(fake_ctx, third_party, "test-card.json")
    chat = import_chat((third_party / "chats" / "1673181146000.jsonl").read_bytes(), "1673181146000.jsonl")
    assert chat.character_name == "Aqua"
    # Another character is open: the chat still goes to Aqua, and the user is told.
    owner = imports.chat_owner(fake_ctx, chat.character_name, other.id)
    assert owner.character_id == aqua.id and "Aqua" in owner.note and not owner.candidates
    assert imports.chat_owner(fake_ctx, chat.character_name, aqua.id) == imports.ChatOwner(aqua.id)
    # A file that names nobody goes where the user is.
    assert imports.chat_owner(fake_ctx, "", other.id) == imports.ChatOwner(other.id)


def test_an_imported_chat_asks_when_no_or_several_characters_match(
    fake_ctx: AppContext, third_party: Path
) -> None:
    other = add(fake_ctx, third_party, "test-card.json")
    megumin = import_chat((third_party / "chats" / "1673323621108.jsonl").read_bytes(), "m.jsonl")
    owner = imports.chat_owner(fake_ctx, megumin.character_name, other.id)
    assert owner.character_id is None  # not glued to whoever happens to be open
    assert [c.id for c in owner.candidates] == [other.id]
    assert "no character here has that name" in owner.note and megumin.character_name in owner.note

    aqua = import_card(card(third_party, "Aqua.png"), "Aqua.png")
    one = fake_ctx.store.characters.create(aqua)
    two = fake_ctx.store.characters.create(import_card(card(third_party, "Aqua.json"), "Aqua.json"))
    owner = imports.chat_owner(fake_ctx, "aqua", other.id)
    assert owner.character_id is None and {c.id for c in owner.candidates} == {one.id, two.id}
    assert "Several characters are named aqua" in owner.note
    assert imports.chat_owner(fake_ctx, "Aqua", two.id) == imports.ChatOwner(two.id)

    session = fake_ctx.store.sessions.create(title="imported")
    imports.attach_chat(fake_ctx, session.id, two.id)
    assert fake_ctx.store.sessions.get(session.id).character_id == two.id
