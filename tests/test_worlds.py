"""World books: the three file shapes import, enable/disable persists, bad files are refused plainly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.lore.model import Lorebook
from store.cards.model import MAX_BOOK_ENTRIES
from store.errors import CardFormatError, NotFoundError, StoreCorruptError, StoreError
from store.worlds import MAX_WORLD_BYTES, WorldBookStore


@pytest.fixture
def worlds(tmp_path: Path) -> WorldBookStore:
    return WorldBookStore(tmp_path / "worlds")


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def lorebook_v3() -> dict[str, Any]:
    entry = {"keys": ["moon"], "content": "The moon is hollow.", "extensions": {}, "enabled": True}
    return {
        "spec": "lorebook_v3",
        "data": {
            "name": "Moon Lore",
            "extensions": {},
            "entries": [entry | {"insertion_order": 1, "use_regex": False}],
        },
    }


def test_sillytavern_world_info_is_kept_raw(third_party: Path, worlds: WorldBookStore) -> None:
    raw = (third_party / "cards" / "Eldoria.json").read_bytes()
    summary = worlds.import_file(raw, "Eldoria.json")
    assert (summary.name, summary.entries, summary.enabled, summary.shape) == (
        "Eldoria",
        4,
        False,
        "st_world_info",
    )
    stored = worlds.get(summary.id)
    assert stored.book == json.loads(raw)  # exactly as SillyTavern wrote it
    book = Lorebook.from_world_info(stored.book, name=stored.name)
    assert book.name == "Eldoria" and len(book.entries) == 4
    assert "eldoria" in book.entries[0].keys


def test_lorebook_v3_is_stored_as_its_character_book(worlds: WorldBookStore) -> None:
    export = lorebook_v3()
    summary = worlds.import_file(as_json(export), "whatever.json", enabled=True)
    assert (summary.name, summary.entries, summary.enabled, summary.shape) == (
        "Moon Lore",
        1,
        True,
        "character_book",
    )
    stored = worlds.get(summary.id)
    assert stored.book == export["data"]
    assert Lorebook.from_dict(stored.book).entries[0].content == "The moon is hollow."


def test_a_cards_character_book_imports(third_party: Path, worlds: WorldBookStore) -> None:
    card = json.loads((third_party / "cards" / "test-card.json").read_bytes())
    book = card["data"]["character_book"]
    summary = worlds.import_file(as_json(book), "luna-book.json")
    assert (summary.name, summary.entries, summary.shape) == ("Luna's World", 1, "character_book")
    assert worlds.get(summary.id).book == book
    unnamed = worlds.import_file(as_json({"entries": []}), "C:\\books\\My Book.json")
    assert worlds.get(unnamed.id).name == "My Book"  # named after the file, never a path


def test_enable_disable_rename_delete_persist(
    third_party: Path, tmp_path: Path, worlds: WorldBookStore
) -> None:
    eldoria = worlds.import_file((third_party / "cards" / "Eldoria.json").read_bytes(), "Eldoria.json")
    moon = worlds.import_file(as_json(lorebook_v3()), "moon.json")
    assert worlds.enabled_books() == []
    assert worlds.set_enabled(eldoria.id, True).enabled
    assert [b.id for b in worlds.enabled_books()] == [eldoria.id]
    renamed = worlds.rename(moon.id, "  Lunar   notes ")
    assert renamed.name == "Lunar notes" and worlds.get(moon.id).book["name"] == "Lunar notes"
    reopened = WorldBookStore(tmp_path / "worlds")
    assert [(s.name, s.enabled) for s in reopened.list()] == [("Eldoria", True), ("Lunar notes", False)]
    reopened.set_enabled(eldoria.id, False)
    assert reopened.enabled_books() == []
    reopened.delete(moon.id)
    assert [s.id for s in reopened.list()] == [eldoria.id]
    with pytest.raises(NotFoundError):
        reopened.get(moon.id)
    with pytest.raises(NotFoundError):
        reopened.delete(moon.id)
    with pytest.raises(StoreError, match="needs a name"):
        reopened.rename(eldoria.id, " ")


def test_an_edited_book_replaces_the_old_one(third_party: Path, worlds: WorldBookStore) -> None:
    summary = worlds.import_file((third_party / "cards" / "Eldoria.json").read_bytes(), "Eldoria.json")
    stored = worlds.get(summary.id)
    converted = Lorebook.from_world_info(stored.book, name=stored.name).to_dict()
    converted["entries"] = converted["entries"][:2]
    saved = worlds.save(summary.id, converted)
    assert (saved.shape, saved.entries, saved.name) == ("character_book", 2, "Eldoria")
    assert worlds.get(summary.id).book == converted
    with pytest.raises(StoreError, match="cannot be saved: its entries must be a list"):
        worlds.save(summary.id, {"entries": {"0": {}}})
    assert worlds.get(summary.id).book == converted


def _card() -> dict[str, Any]:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Bob"}}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "the file is empty"),
        (b"   \n", "the file is empty"),
        (b"{not json", "the file is not valid JSON"),
        (b"\xff\xfe\x00", "the file is not UTF-8 text"),
        (b"[1, 2]", "it is not a world book"),
        (as_json(_card()), "it is a character card, not a world book"),
        (as_json({"name": "x"}), "it has no list or object of entries"),
        (as_json({"entries": "lots"}), "it has no list or object of entries"),
        (as_json({"entries": [{"keys": []}, 3]}), "entry 2 is not an object"),
        (as_json({"entries": {"0": "text"}}), "entry 1 is not an object"),
        (as_json({"spec": "lorebook_v3", "entries": []}), "has no data object"),
        (as_json({"spec": "lorebook_v3", "data": {"entries": {}}}), "its entries must be a list"),
        (as_json({"spec": "chara_card_v9"}), "'chara_card_v9' is not one Hearth reads as a world book"),
        (as_json({"entries": [{}] * (MAX_BOOK_ENTRIES + 1)}), "entries; the limit is 10,000"),
        (b" " * (MAX_WORLD_BYTES + 1), "the file is over the 16.0 MB limit for world books"),
    ],
)
def test_bad_files_are_refused_in_plain_words(worlds: WorldBookStore, payload: bytes, message: str) -> None:
    with pytest.raises(StoreError) as caught:
        worlds.import_file(payload, "../odd/book.json")
    assert not isinstance(caught.value, CardFormatError)  # a world book error, not a card error
    assert str(caught.value).startswith("Could not import “book.json”: ")
    assert message in str(caught.value)
    assert worlds.list() == [] and list(worlds.root.iterdir()) == []


def test_ids_and_damaged_files(worlds: WorldBookStore) -> None:
    good = worlds.import_file(as_json(lorebook_v3()), "moon.json")
    bad = worlds.import_file(as_json(lorebook_v3()), "moon2.json")
    (worlds.root / f"{bad.id}.json").write_text('{"schema": 1, "id": "nope"}')
    (worlds.root / "notes.json").write_text("{}")  # not a name Hearth gives, so not a book
    assert [s.id for s in worlds.list()] == [good.id]
    with pytest.raises(StoreCorruptError, match="damaged"):
        worlds.get(bad.id)
    for bad_id in ("../x", "notes", ""):
        with pytest.raises(NotFoundError):
            worlds.get(bad_id)
