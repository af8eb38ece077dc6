"""The character editor: saving an unchanged card gives back exactly that card; an edit changes one field."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from services.chat.character_edit import LORE_COLUMNS, LORE_TYPES, TEXT_FIELDS, apply_fields, field_values
from store.cards import CharacterBook, CharacterCard, LoreEntry, export_json, import_card
from store.characters import CharacterStore
from store.errors import CardFormatError

NOW = 1_700_000_000
# Every character card among the third-party fixtures (the rest are lorebooks, templates, a plain PNG).
CARD_FILES = [
    "cards/default_Seraphina.png",
    "cards/default_Seraphina_ccv3.png",
    "cards/contest_Assistant_Sakana.png",
    "cards/test-card.json",
    "cards/Aqua.png",
    "cards/Aqua.json",
    "cards/Example.json",
    "cards/contest_Assistant_Gloria.png",
    "cards/contest_Assistant_Amy.png",
    "cards/yuzu.png",
    "yaml/Example.yaml",
    "yaml/Assistant.yaml",
]
GREETINGS, TAGS, LORE = len(TEXT_FIELDS), len(TEXT_FIELDS) + 1, len(TEXT_FIELDS) + 2


def load(third_party: Path, name: str) -> CharacterCard:
    return import_card((third_party / name).read_bytes(), name).card


def through_widgets(values: list[Any]) -> list[Any]:
    """The values as the editor's gradio widgets hand them back (a Dataframe becomes pandas, with NaN)."""
    widgets: list[Any] = [gr.Textbox() for _ in TEXT_FIELDS]
    widgets += [
        gr.Dataframe(headers=["Alternate greeting"], datatype=["str"], column_count=1, interactive=True),
        gr.Textbox(),
        gr.Dataframe(
            headers=LORE_COLUMNS, datatype=LORE_TYPES, column_count=len(LORE_COLUMNS), interactive=True
        ),
    ]
    return [
        widget.preprocess(widget.postprocess(value)) for widget, value in zip(widgets, values, strict=True)
    ]


def sparse_card() -> CharacterCard:
    """A card that leaves out every optional field the editor shows, and holds text it would normalise."""
    entries = [
        LoreEntry(keys=["a,b", " spaced "], content="lore one\r\nline two"),
        LoreEntry(keys=[], content="", insertion_order=2.5, priority=0, secondary_keys=[], constant=False),
        LoreEntry(keys=["x"], content="y", enabled=False, position="", selective=None, id="custom"),
    ]
    return CharacterCard(
        name="Sparse",
        nickname="",
        description="line\r\nbreak",
        alternate_greetings=["", "hello"],
        tags=["one, two", " three"],
        character_book=CharacterBook(entries=entries),
        spec="v2",
    )


# --- an unchanged save gives back the same card ---


def test_the_list_covers_every_card_fixture_with_a_lorebook(third_party: Path) -> None:
    with_books = set()
    for path in [*third_party.glob("cards/*"), *third_party.glob("yaml/*.yaml")]:
        name = str(path.relative_to(third_party))
        try:
            card = load(third_party, name)
        except CardFormatError:
            continue
        if card.character_book is not None:
            with_books.add(name)
    assert len(with_books) >= 4
    assert with_books <= set(CARD_FILES)


@pytest.mark.parametrize("name", CARD_FILES)
def test_an_unchanged_save_gives_back_the_same_card(third_party: Path, name: str) -> None:
    card = load(third_party, name)
    original = copy.deepcopy(card)
    saved = apply_fields(card, field_values(card))
    assert saved == original
    assert export_json(saved, now=NOW) == export_json(original, now=NOW)
    assert card == original  # the card passed in is not modified


@pytest.mark.parametrize("name", CARD_FILES)
def test_an_unchanged_save_through_the_widgets_gives_back_the_same_card(third_party: Path, name: str) -> None:
    card = load(third_party, name)
    saved = apply_fields(card, through_widgets(field_values(card)))
    assert saved == card
    assert json.loads(export_json(saved, now=NOW)) == json.loads(export_json(card, now=NOW))


def test_priority_left_out_stays_left_out(third_party: Path) -> None:
    card = load(third_party, "cards/default_Seraphina.png")
    assert card.character_book is not None and card.character_book.entries[0].priority is None
    exported = json.loads(export_json(apply_fields(card, through_widgets(field_values(card))), now=NOW))
    assert all("priority" not in entry for entry in exported["data"]["character_book"]["entries"])


@pytest.mark.parametrize("widgets", [False, True])
def test_left_out_fields_and_unnormalised_text_survive(widgets: bool) -> None:
    card = sparse_card()
    values = field_values(card)
    saved = apply_fields(card, through_widgets(values) if widgets else values)
    assert saved == card
    assert export_json(saved, now=NOW) == export_json(card, now=NOW)


def test_line_ends_the_browser_normalised_are_not_an_edit() -> None:
    card = sparse_card()
    values = field_values(card)
    values[TEXT_FIELDS.index("description")] = "line\nbreak"
    values[LORE][0][2] = "lore one\nline two"
    assert apply_fields(card, values) == card


def test_a_blank_story_card_round_trips_and_gets_no_book() -> None:
    card = CharacterCard(name="New character", spec="v2")
    assert apply_fields(card, through_widgets(field_values(card))) == card
    values = field_values(card)
    values[LORE] = [["", "", "", False, False, False, "", None, None, False, False]]  # a row left empty
    assert apply_fields(card, values).character_book is None


def test_the_store_keeps_an_unchanged_save_identical(third_party: Path, tmp_path: Path) -> None:
    store = CharacterStore(tmp_path / "characters")
    for name in CARD_FILES[:4]:
        summary = store.create(import_card((third_party / name).read_bytes(), name))
        before = store.get(summary.id).card
        store.save(summary.id, apply_fields(before, through_widgets(field_values(before))))
        assert store.get(summary.id).card == before


# --- an edit changes that field and nothing else ---


def test_editing_one_priority_changes_only_that_entry(third_party: Path) -> None:
    card = load(third_party, "cards/contest_Assistant_Sakana.png")
    assert card.character_book is not None
    values = field_values(card)
    values[LORE][3][LORE_COLUMNS.index("Priority")] = 7
    saved = apply_fields(card, through_widgets(values))
    expected = copy.deepcopy(card)
    assert expected.character_book is not None
    expected.character_book.entries[3].priority = 7
    assert saved == expected


def test_editing_the_name_changes_only_the_name(third_party: Path) -> None:
    card = load(third_party, "cards/default_Seraphina_ccv3.png")
    values = field_values(card)
    values[TEXT_FIELDS.index("name")] = "Seraphina the Kind"
    assert apply_fields(card, through_widgets(values)) == replace(card, name="Seraphina the Kind")


def test_edits_to_each_lore_column_reach_their_field() -> None:
    card = sparse_card()
    values = field_values(card)
    row = values[LORE][0]
    row[:] = ["k1, k2", "s", "new", False, True, True, "before_char", 5, 3.5, True, True]
    saved = apply_fields(card, values)
    assert saved.character_book is not None and card.character_book is not None
    entry = saved.character_book.entries[0]
    assert entry == replace(
        card.character_book.entries[0], keys=["k1", "k2"], secondary_keys=["s"], content="new", enabled=False,
        constant=True, selective=True, position="before_char", insertion_order=5, priority=3.5,
        case_sensitive=True, use_regex=True,
    )  # fmt: skip
    assert saved.character_book.entries[1:] == card.character_book.entries[1:]
    assert (saved.tags, saved.alternate_greetings, saved.nickname) == (
        card.tags,
        card.alternate_greetings,
        "",
    )


def test_tags_greetings_and_nickname_edits() -> None:
    card = sparse_card()
    values = field_values(card)
    values[TAGS] = "a, b"
    values[GREETINGS] = [["hi"], [""], ["there"]]
    values[TEXT_FIELDS.index("nickname")] = "  Spa  "
    saved = apply_fields(card, values)
    assert (saved.tags, saved.alternate_greetings, saved.nickname) == (["a", "b"], ["hi", "there"], "Spa")
    assert replace(saved, tags=card.tags, alternate_greetings=card.alternate_greetings, nickname="") == card


def test_rows_add_and_delete_entries() -> None:
    card = sparse_card()
    values = field_values(card)
    values[LORE][2][:3] = ["", "", ""]  # blanking keys and content deletes the entry
    values[LORE].append(["new key", "", "new lore", True, False, False, "after_char", 0, 0, False, False])
    book = apply_fields(card, values).character_book
    assert book is not None and card.character_book is not None
    assert book.entries[:2] == card.character_book.entries[:2]
    assert [e.content for e in book.entries] == ["lore one\r\nline two", "", "new lore"]
    added = book.entries[2]
    assert added == LoreEntry(
        keys=["new key"], content="new lore", id=0
    )  # untouched optional cells stay unset


def test_deleting_a_row_keeps_every_other_entry_whole(third_party: Path) -> None:
    card = load(third_party, "cards/contest_Assistant_Sakana.png")
    assert card.character_book is not None and len(card.character_book.entries) > 4
    values = field_values(card)
    del values[LORE][1]  # the table's own row deletion: one row fewer
    book = apply_fields(card, through_widgets(values)).character_book
    assert book is not None
    assert book.entries == card.character_book.entries[:1] + card.character_book.entries[2:]


def test_malformed_rows_are_refused_with_the_row_named() -> None:
    card = sparse_card()
    for column, value, message in [
        ("Position", "middle", "Position must be"),
        ("Priority", "high", "Priority"),
    ]:
        values = field_values(card)
        values[LORE][1][LORE_COLUMNS.index(column)] = value
        with pytest.raises(CardFormatError, match=f"Lorebook row 2: {message}"):
            apply_fields(card, values)
    values = field_values(card)
    values[TEXT_FIELDS.index("name")] = "  "
    with pytest.raises(CardFormatError, match="needs a name"):
        apply_fields(card, values)


def test_deleting_one_row_and_adding_another_in_one_save(third_party: Path) -> None:
    card = load(third_party, "cards/contest_Assistant_Sakana.png")
    assert card.character_book is not None
    old = card.character_book.entries
    values = field_values(card)
    del values[LORE][1]
    values[LORE].append(["fresh key", "", "fresh lore", True, False, False, "after_char", 0, 0, False, False])
    values[LORE][0][2] = "changed content"  # and one edit, all in the same save
    book = apply_fields(card, through_widgets(values)).character_book
    assert book is not None
    assert book.entries[1:-1] == old[2:]  # untouched entries keep every hidden field
    assert book.entries[0] == replace(old[0], content="changed content")
    assert book.entries[-1].content == "fresh lore" and book.entries[-1].id not in {e.id for e in old}


def test_a_row_added_to_the_lorebook_table_is_enabled() -> None:
    # The table hands a new row's check boxes back blank: the entry keeps the defaults
    # (enabled), where it was saved disabled and never fired.
    card = sparse_card()
    values = field_values(card)
    values[LORE].append(["ghost", "", "A ghost haunts the mill.", "", "", "", "", "", "", "", ""])
    book = apply_fields(card, through_widgets(values)).character_book
    assert book is not None
    added = book.entries[-1]
    assert (added.keys, added.content, added.enabled) == (["ghost"], "A ghost haunts the mill.", True)
    assert not added.constant and not added.case_sensitive
