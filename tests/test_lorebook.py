"""Lorebook activation: one test per rule, plus the real books in the third-party fixtures."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.lore.activation import LoreActivation, Lorebook, LoreEntry, activate
from engine.lore.keys import MAX_PATTERN_CHARS, MAX_REGEX_INPUT, split_decorators
from engine.prompts.macros import MacroContext, expand_macros


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word."""
    return len(text.split())


def entry(keys: list[str] | None = None, content: str = "", **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "keys": keys or [],
        "content": content,
        "extensions": {},
        "enabled": True,
        "insertion_order": 100,
    }
    raw.update(fields)
    return raw


def book(*entries: dict[str, Any], **fields: Any) -> Lorebook:
    return Lorebook.from_dict(
        {"name": fields.pop("name", "test"), "extensions": {}, "entries": list(entries), **fields}
    )


def texts(result: LoreActivation) -> list[str]:
    return [e.text for e in (*result.before_char, *result.after_char, *result.at_depth)]


def run(books: Lorebook | list[Lorebook], *messages: str, **options: Any) -> LoreActivation:
    return activate(books if isinstance(books, list) else [books], list(messages), words, **options)


# --- keys ---------------------------------------------------------------------------


def test_keys_ignore_case_unless_the_entry_is_case_sensitive() -> None:
    loose = book(entry(["Dragon"], "Dragons breathe fire."))
    strict = book(entry(["Dragon"], "Dragons breathe fire.", case_sensitive=True))
    assert texts(run(loose, "a DRAGON appears")) == ["Dragons breathe fire."]
    assert texts(run(strict, "a DRAGON appears")) == []
    assert texts(run(strict, "a Dragon appears")) == ["Dragons breathe fire."]


def test_case_sensitivity_falls_back_to_the_default() -> None:
    lore = book(entry(["Dragon"], "Fire."))
    assert texts(run(lore, "dragon", default_case_sensitive=True)) == []
    assert texts(run(lore, "Dragon", default_case_sensitive=True)) == ["Fire."]


def test_one_word_keys_match_whole_words_only() -> None:
    lore = book(entry(["cat"], "Cats purr."))
    assert texts(run(lore, "let us concatenate strings")) == []
    assert texts(run(lore, "the cat_food is gone")) == []
    assert texts(run(lore, "a cat.")) == ["Cats purr."]
    assert texts(run(lore, "(cat)")) == ["Cats purr."]


def test_whole_word_matching_can_be_turned_off_per_entry() -> None:
    lore = book(entry(["cat"], "Cats purr.", extensions={"match_whole_words": False}))
    assert texts(run(lore, "let us concatenate strings")) == ["Cats purr."]


def test_multi_word_keys_match_as_substrings() -> None:
    lore = book(entry(["magical forest"], "It glows."))
    assert texts(run(lore, "the magical forests of the north")) == ["It glows."]
    assert texts(run(lore, "a magical, dark forest")) == []


def test_whole_words_still_match_in_text_written_without_spaces() -> None:
    lore = book(entry(["東京"], "The capital."))
    assert texts(run(lore, "明日は東京に行く")) == ["The capital."]


def test_blank_keys_never_match() -> None:
    lore = book(entry(["", "   "], "Never."))
    assert texts(run(lore, "anything at all")) == []


# --- selective and secondary keys ---------------------------------------------------


def test_selective_entry_needs_a_key_from_both_lists() -> None:
    lore = book(entry(["sword"], "The blade is cursed.", selective=True, secondary_keys=["cursed", "dark"]))
    assert texts(run(lore, "I draw my sword")) == []
    assert texts(run(lore, "a dark room")) == []
    assert texts(run(lore, "I draw my sword in the dark")) == ["The blade is cursed."]


def test_secondary_keys_count_only_when_the_entry_is_selective() -> None:
    lore = book(entry(["sword"], "A sword.", selective=False, secondary_keys=["dark"]))
    assert texts(run(lore, "my sword")) == ["A sword."]


def test_selective_entry_without_secondary_keys_matches_on_primary_keys() -> None:
    lore = book(entry(["sword"], "A sword.", selective=True, secondary_keys=[]))
    assert texts(run(lore, "my sword")) == ["A sword."]


def test_secondary_keys_are_ignored_for_regex_entries() -> None:
    lore = book(entry([r"swo+rd"], "A sword.", use_regex=True, selective=True, secondary_keys=["dark"]))
    assert texts(run(lore, "my swoooord")) == ["A sword."]


@pytest.mark.parametrize(
    ("logic", "message", "active"),
    [
        (1, "sword dark cursed", False),  # NOT ALL
        (1, "sword dark", True),
        (2, "sword dark", False),  # NOT ANY
        (2, "sword", True),
        (3, "sword dark", False),  # AND ALL
        (3, "sword cursed dark", True),
    ],
)
def test_sillytavern_selective_logic_from_extensions(logic: int, message: str, active: bool) -> None:
    raw = entry(["sword"], "Lore.", selective=True, secondary_keys=["dark", "cursed"])
    raw["extensions"] = {"selectiveLogic": logic}
    assert bool(texts(run(book(raw), message))) is active


# --- constant, enabled, empty content, once -----------------------------------------


def test_constant_entries_always_insert() -> None:
    lore = book(entry([], "The world is flat.", constant=True), entry(["moon"], "The moon is near."))
    assert texts(run(lore)) == ["The world is flat."]
    assert texts(run(lore, "hello", default_scan_depth=0)) == ["The world is flat."]


def test_constant_entries_still_respect_the_budget() -> None:
    lore = book(entry([], "one two three four five", constant=True), token_budget=3)
    result = run(lore)
    assert texts(result) == []
    assert [d.text for d in result.dropped] == ["one two three four five"]


def test_disabled_entries_never_activate_in_any_case() -> None:
    lore = book(
        entry(["moon"], "Keyed.", enabled=False),
        entry([], "Constant.", constant=True, enabled=False),
        entry([], "@@activate\nForced.", enabled=False),
    )
    assert texts(run(lore, "the moon")) == []


def test_empty_content_adds_nothing() -> None:
    lore = book(entry(["moon"], ""), entry(["moon"], "   \n "), entry(["moon"], "@@depth 2\n"))
    result = run(lore, "the moon")
    assert texts(result) == []
    assert result.tokens == 0
    assert result.dropped == ()


def test_an_entry_is_added_once_even_when_matched_several_times() -> None:
    lore = book(entry(["moon", "lunar", "Moon"], "The moon is near.", constant=True))
    result = run(lore, "moon lunar Moon", "the moon again")
    assert texts(result) == ["The moon is near."]


def test_the_same_text_from_two_books_is_added_once() -> None:
    embedded = book(entry(["forest"], "Eldoria is a forest."), name="card")
    world = book(entry(["forest"], "Eldoria is a forest."), name="world")
    result = run([embedded, world], "the forest")
    assert texts(result) == ["Eldoria is a forest."]
    assert result.after_char[0].book == "card"


# --- scan depth ---------------------------------------------------------------------


def test_scan_depth_limits_how_many_recent_messages_are_read() -> None:
    messages = ["the moon rises", "hello", "how are you"]
    assert texts(run(book(entry(["moon"], "Moon lore.")), *messages)) == []  # default depth 2
    assert texts(run(book(entry(["moon"], "Moon lore."), scan_depth=3), *messages)) == ["Moon lore."]
    assert texts(run(book(entry(["moon"], "Moon lore.")), *messages, default_scan_depth=3)) == ["Moon lore."]


def test_a_scan_depth_beyond_the_chat_reads_every_message() -> None:
    messages = ["the moon rises", "hello", "how are you"]
    assert texts(run(book(entry(["moon"], "Moon lore."), scan_depth=5), *messages)) == ["Moon lore."]


def test_an_entry_can_override_the_scan_depth() -> None:
    messages = ["the moon rises", "hello", "how are you"]
    by_extension = entry(["moon"], "Moon lore.", extensions={"scan_depth": 5})
    by_decorator = entry(["moon"], "@@scan_depth 3\nDecorated moon lore.")
    assert texts(run(book(by_extension, by_decorator), *messages)) == ["Moon lore.", "Decorated moon lore."]


def test_scan_depth_zero_reads_no_messages() -> None:
    lore = book(entry(["moon"], "Moon lore."), scan_depth=0)
    assert texts(run(lore, "the moon")) == []


# --- recursion ----------------------------------------------------------------------


CHAIN = (
    entry(["castle"], "The castle has a dungeon."),
    entry(["dungeon"], "The dungeon holds a dragon."),
    entry(["dragon"], "The dragon guards gold."),
)


def test_activated_content_activates_further_entries() -> None:
    result = run(book(*CHAIN, recursive_scanning=True), "we reach the castle")
    assert texts(result) == [
        "The castle has a dungeon.",
        "The dungeon holds a dragon.",
        "The dragon guards gold.",
    ]


def test_no_recursion_when_the_book_turns_it_off() -> None:
    result = run(book(*CHAIN, recursive_scanning=False), "we reach the castle")
    assert texts(result) == ["The castle has a dungeon."]


def test_recursion_is_off_for_a_book_that_turns_it_off_even_beside_one_that_allows_it() -> None:
    closed = book(entry(["castle"], "The castle has a dungeon."), recursive_scanning=False, name="closed")
    open_ = book(entry(["dungeon"], "The dungeon is deep."), recursive_scanning=True, name="open")
    assert texts(run([closed, open_], "the castle")) == ["The castle has a dungeon."]


def test_recursion_stops_at_the_step_limit() -> None:
    result = run(book(*CHAIN), "we reach the castle", max_recursion_steps=1)
    assert texts(result) == ["The castle has a dungeon.", "The dungeon holds a dragon."]
    assert any("recursion stopped after 1 steps" in w for w in result.warnings)


def test_entries_that_trigger_each_other_end_without_a_limit() -> None:
    loop = book(entry(["ping"], "ping leads to pong"), entry(["pong"], "pong leads to ping"))
    result = run(loop, "ping")
    assert sorted(texts(result)) == ["ping leads to pong", "pong leads to ping"]
    assert result.warnings == ()


def test_a_selective_entry_can_find_its_keys_across_chat_and_recursion_text() -> None:
    lore = book(
        entry(["castle"], "The castle is dark."),
        entry(["sword"], "The blade is cursed.", selective=True, secondary_keys=["dark"]),
    )
    assert texts(run(lore, "I draw my sword at the castle")) == [
        "The castle is dark.",
        "The blade is cursed.",
    ]
    assert texts(run(lore, "I draw my sword at the castle", default_recursive=False)) == [
        "The castle is dark."
    ]


def test_sillytavern_recursion_flags_are_honoured() -> None:
    prevent = entry(["castle"], "The castle has a dungeon.", extensions={"prevent_recursion": True})
    assert texts(run(book(prevent, CHAIN[1]), "the castle")) == ["The castle has a dungeon."]
    exclude = entry(["dungeon"], "The dungeon holds a dragon.", extensions={"exclude_recursion": True})
    assert texts(run(book(CHAIN[0], exclude), "the castle")) == ["The castle has a dungeon."]
    assert len(texts(run(book(CHAIN[0], exclude), "the castle dungeon"))) == 2


# --- budget and order ---------------------------------------------------------------


def test_over_budget_the_lowest_priority_is_dropped_first() -> None:
    lore = book(
        entry(["moon"], "low priority lore here", priority=1, insertion_order=50),
        entry(["moon"], "high priority lore here", priority=9, insertion_order=10),
        token_budget=6,
    )
    result = run(lore, "the moon")
    assert texts(result) == ["high priority lore here"]
    assert [d.text for d in result.dropped] == ["low priority lore here"]


def test_equal_priority_falls_back_to_dropping_the_lowest_insertion_order() -> None:
    lore = book(
        entry(["moon"], "placed high in the prompt", insertion_order=1),
        entry(["moon"], "placed near the chat", insertion_order=200),
        token_budget=6,
    )
    result = run(lore, "the moon")
    assert texts(result) == ["placed near the chat"]
    assert [d.text for d in result.dropped] == ["placed high in the prompt"]


def test_once_an_entry_overflows_lower_ranked_ones_are_dropped_too() -> None:
    lore = book(
        entry(["moon"], "one two three four", priority=3),
        entry(["moon"], "five six seven eight nine", priority=2),
        entry(["moon"], "ten", priority=1),
        token_budget=6,
    )
    result = run(lore, "moon")
    assert texts(result) == ["one two three four"]
    assert [d.text for d in result.dropped] == ["five six seven eight nine", "ten"]


def test_the_default_budget_applies_to_books_without_one() -> None:
    lore = book(entry(["moon"], "one two three"), entry(["moon"], "four five six"))
    assert len(texts(run(lore, "moon", default_budget=3))) == 1
    assert len(texts(run(lore, "moon", default_budget=6))) == 2


def test_the_character_book_takes_precedence_within_the_total_budget() -> None:
    character = book(entry(["moon"], "character moon lore", priority=0), name="character")
    world = book(entry(["moon"], "world moon lore", priority=100), name="world")
    result = run([character, world], "moon", total_budget=4)
    assert texts(result) == ["character moon lore"]
    assert [d.book for d in result.dropped] == ["world"]


def test_entries_come_out_in_ascending_insertion_order_by_position() -> None:
    lore = book(
        entry(["moon"], "after 30", insertion_order=30, position="after_char"),
        entry(["moon"], "before 20", insertion_order=20, position="before_char"),
        entry(["moon"], "after 10", insertion_order=10, position="after_char"),
        entry(["moon"], "before 5", insertion_order=5, position="before_char"),
        entry(["moon"], "unset position", insertion_order=1),
    )
    result = run(lore, "moon")
    assert [e.text for e in result.before_char] == ["before 5", "before 20"]
    assert [e.text for e in result.after_char] == ["unset position", "after 10", "after 30"]
    assert result.text("before_char") == "before 5\nbefore 20"
    assert result.tokens == 10


# --- decorators ---------------------------------------------------------------------


def test_activate_decorator_inserts_without_keys_and_is_stripped() -> None:
    assert texts(run(book(entry([], "@@activate\nAlways here.")))) == ["Always here."]


def test_dont_activate_decorator_keeps_an_entry_out() -> None:
    lore = book(
        entry(["moon"], "@@dont_activate\nKeyed."),
        entry([], "@@dont_activate\nConstant.", constant=True),
    )
    assert texts(run(lore, "the moon")) == []


def test_depth_decorator_places_an_entry_at_depth() -> None:
    result = run(book(entry(["moon"], "@@depth 2\n@@role assistant\nThe moon is watching.")), "moon")
    assert result.before_char == result.after_char == ()
    (placed,) = result.at_depth
    assert (placed.text, placed.depth, placed.role) == ("The moon is watching.", 2, "assistant")
    assert result.depth_groups() == ((2, "assistant", "The moon is watching."),)


def test_unknown_decorators_are_stripped_and_fallbacks_are_used() -> None:
    decorators, body = split_decorators("@@position after_desc\n@@instruct_depth 3\n@@@depth 5\nLore text.")
    assert body == "Lore text."
    assert decorators.depth == 5
    assert decorators.seen == ("position", "instruct_depth", "depth")


def test_a_supported_decorator_wins_over_its_fallback() -> None:
    decorators, body = split_decorators("@@depth 1\n@@@depth 9\n\nText")
    assert (decorators.depth, body) == (1, "Text")


def test_content_without_decorators_is_left_alone() -> None:
    assert split_decorators("Lore with @@ inside.\n@@depth 3") == (
        split_decorators("")[0],
        "Lore with @@ inside.\n@@depth 3",
    )


# --- regex keys ---------------------------------------------------------------------


def test_regex_keys_match_when_the_entry_uses_regex() -> None:
    lore = book(entry([r"\bdrag(on|ons)\b"], "Dragon lore.", use_regex=True))
    assert texts(run(lore, "two DRAGONS")) == ["Dragon lore."]
    assert texts(run(lore, "a dragonfly")) == []


def test_regex_keys_follow_the_entry_case_sensitivity() -> None:
    lore = book(entry(["Dragon"], "Dragon lore.", use_regex=True, case_sensitive=True))
    assert texts(run(lore, "a dragon")) == []


def test_an_invalid_regex_does_not_match_and_warns() -> None:
    lore = book(entry(["(unclosed"], "Never.", use_regex=True, name="broken"))
    result = run(lore, "(unclosed")
    assert texts(result) == []
    assert any(
        '"(unclosed"' in w and "not a valid regular expression" in w and "broken" in w
        for w in result.warnings
    )


def test_a_catastrophic_regex_is_stopped_and_warns() -> None:
    lore = book(entry([r"(a+)+$"], "Never.", use_regex=True))
    result = run(lore, "a" * 5_000 + "!", regex_timeout=0.01)
    assert texts(result) == []
    assert any("took too long" in w for w in result.warnings)


def test_overlong_and_huge_repeat_patterns_are_refused() -> None:
    lore = book(
        entry(["a" * (MAX_PATTERN_CHARS + 1)], "Long.", use_regex=True),
        entry(["(?:(?:a{100}){100}){100}"], "Repeats.", use_regex=True),
    )
    result = run(lore, "a" * 100)
    assert texts(result) == []
    assert any("longer than" in w for w in result.warnings)
    assert any("repeats too many times" in w for w in result.warnings)


def test_regex_search_reads_only_the_newest_text() -> None:
    lore = book(entry(["^START"], "Found.", use_regex=True))
    assert texts(run(lore, "START" + "x" * 10)) == ["Found."]
    assert texts(run(lore, "START" + "x" * MAX_REGEX_INPUT)) == []


def test_sillytavern_slash_regex_keys_work_in_plain_entries() -> None:
    lore = book(entry(["/drag(on|oon)/i"], "Dragon lore."))
    assert texts(run(lore, "a DRAGOON")) == ["Dragon lore."]
    assert texts(run(book(entry(["/usr/bin"], "Path.")), "see /usr/bin now")) == ["Path."]


def test_sillytavern_exported_books_keep_plain_keys_despite_use_regex() -> None:
    exported = entry(["magic (old)"], "Old magic.", use_regex=True)
    exported["extensions"] = {"display_index": 0, "selectiveLogic": 0}
    assert texts(run(book(exported), "the magic (old) ways")) == ["Old magic."]
    strict = entry(["magic (old)"], "Old magic.", use_regex=True)
    assert texts(run(book(strict), "the magic (old) ways")) == []


# --- SillyTavern extensions ---------------------------------------------------------


def test_sillytavern_probability_is_rolled_with_the_given_rng() -> None:
    never = entry(["moon"], "Never.", extensions={"probability": 0, "useProbability": True})
    unused = entry(["moon"], "Always.", extensions={"probability": 0, "useProbability": False})
    assert texts(run(book(never, unused), "moon", rng=random.Random(1))) == ["Always."]
    half = book(entry(["moon"], "Sometimes.", extensions={"probability": 50}))
    rolls = [bool(texts(run(half, "moon", rng=random.Random(seed)))) for seed in range(20)]
    assert rolls == [bool(texts(run(half, "moon", rng=random.Random(seed)))) for seed in range(20)]
    assert True in rolls and False in rolls


def test_sillytavern_at_depth_position_from_extensions() -> None:
    raw = entry(
        ["moon"], "Deep lore.", position="after_char", extensions={"position": 4, "depth": 6, "role": 1}
    )
    (placed,) = run(book(raw), "moon").at_depth
    assert (placed.depth, placed.role) == (6, "user")


# --- reading and writing books ------------------------------------------------------


def test_malformed_fields_are_repaired_and_noted() -> None:
    lore = Lorebook.from_dict(
        {
            "entries": [
                {
                    "keys": "moon",
                    "content": "Moon.",
                    "enabled": "yes",
                    "insertion_order": "x",
                    "extensions": [],
                },
                "not an entry",
            ]
        }
    )
    (only,) = lore.entries
    assert (only.keys, only.enabled, only.insertion_order) == (("moon",), True, 100)
    assert len(lore.notes) == 4
    assert texts(run(lore, "moon")) == ["Moon."]


def test_unknown_fields_survive_a_round_trip() -> None:
    raw = {
        "name": "b",
        "extensions": {"x/y": 1},
        "future_field": [1, 2],
        "entries": [entry(["k"], "c", future_entry_field={"a": 1}, extensions={"risu/flag": True})],
    }
    out = Lorebook.from_dict(raw).to_dict()
    assert out["future_field"] == [1, 2]
    assert out["extensions"] == {"x/y": 1}
    assert out["entries"][0]["future_entry_field"] == {"a": 1}
    assert out["entries"][0]["extensions"] == {"risu/flag": True}


def test_settings_kept_in_extensions_survive_a_round_trip() -> None:
    original = LoreEntry(
        keys=("moon",),
        content="Moon.",
        depth=3,
        role="assistant",
        probability=40,
        scan_depth=7,
        match_whole_words=False,
        selective_logic="and_all",
        exclude_recursion=True,
    )
    raw = Lorebook(entries=(original,)).to_dict()
    (again,) = Lorebook.from_dict(raw).entries
    assert replace(again, extensions={}) == original
    assert raw["entries"][0]["extensions"]["position"] == 4


def test_a_converted_world_info_book_round_trips(third_party: Path) -> None:
    lore = Lorebook.from_world_info(load(third_party, "Eldoria.json"), name="Eldoria")
    assert Lorebook.from_dict(lore.to_dict()) == lore


def test_a_v3_standalone_lorebook_export_is_read() -> None:
    lore = Lorebook.from_dict({"spec": "lorebook_v3", "data": {"name": "v3", "entries": [entry(["k"], "c")]}})
    assert lore.name == "v3"
    assert len(lore.entries) == 1


def test_entry_dataclass_can_be_built_directly() -> None:
    lore = Lorebook(entries=(LoreEntry(keys=("moon",), content="Moon."),), name="direct")
    assert texts(run(lore, "moon")) == ["Moon."]


# --- real books ---------------------------------------------------------------------


def load(third_party: Path, name: str) -> Any:
    return json.loads((third_party / "cards" / name).read_text(encoding="utf-8"))


def test_the_test_card_book_activates_on_its_keys(third_party: Path) -> None:
    raw = load(third_party, "test-card.json")["data"]["character_book"]
    lore = Lorebook.from_dict(raw)
    assert (lore.name, lore.scan_depth, lore.token_budget, lore.recursive_scanning) == (
        "Luna's World",
        2,
        512,
        False,
    )
    assert lore.to_dict() == raw
    result = run(lore, "User: I came to study the CELESTIALS.")
    (placed,) = result.after_char
    assert placed.text.startswith("Celestia is the floating city")
    assert placed.book == "Luna's World"
    assert texts(run(lore, "User: I study celestiality.")) == []


def test_the_sillytavern_world_info_file_converts_and_activates(third_party: Path) -> None:
    lore = Lorebook.from_world_info(load(third_party, "Eldoria.json"), name="Eldoria")
    assert lore.name == "Eldoria"
    assert lore.notes == ()
    assert [e.keys[0] for e in lore.entries] == ["eldoria", "shadowfang", "glade", "power"]
    first = lore.entries[0]
    assert (first.placement, first.selective, first.id, first.comment) == ("before_char", True, 0, "eldoria")
    assert first.extensions["sticky"] == 0 and first.extensions["addMemo"] is True

    ctx = MacroContext(user="Ann", char="Seraphina")
    result = run(
        lore,
        "Seraphina: Rest now.",
        "Ann: Where is this woodland?",
        expand=lambda text: expand_macros(text, ctx),
        default_budget=10_000,
        default_recursive=False,
    )
    assert texts(result) == []  # "woodland" is not the whole word "wood"
    result = run(
        lore,
        "Ann: Which forest is this?",
        expand=lambda text: expand_macros(text, ctx),
        default_budget=10_000,
        default_recursive=False,
    )
    (placed,) = result.before_char
    assert placed.text.startswith('Ann: "What is Eldoria?"\nSeraphina: *Seraphina turns')


def test_the_world_info_book_recurses_through_its_entries(third_party: Path) -> None:
    lore = Lorebook.from_world_info(load(third_party, "Eldoria.json"), name="Eldoria")
    result = run(lore, "Ann: Tell me about the glade.", default_budget=10_000)
    assert [e.entry.comment for e in result.before_char] == ["eldoria", "shadowfang", "glade", "power"]
    small = run(lore, "Ann: Tell me about the glade.", default_budget=200)
    assert [e.entry.comment for e in small.before_char] == ["glade"]
    assert {e.entry.comment for e in small.dropped} <= {"eldoria", "shadowfang", "power"}


@pytest.mark.parametrize("huge", [10**400, -(10**400), float("inf"), float("nan")])
def test_numbers_a_float_cannot_hold_are_ignored_not_fatal(huge: Any) -> None:
    """A book stored before import refused such numbers still loads and writes back."""
    raw = {
        "keys": ["dragon"],
        "content": "Dragons hoard lanterns.",
        "priority": huge,
        "insertion_order": huge,
        "extensions": {"probability": huge, "useProbability": True},
    }
    entry = LoreEntry.from_dict(raw)
    assert entry.priority is None and entry.probability == 100
    assert entry.to_dict()["content"] == "Dragons hoard lanterns."
