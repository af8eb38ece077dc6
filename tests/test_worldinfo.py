"""Kobold-style world info: matching, selective logic, probability, depth, order and budget."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from engine.lore.worldinfo import StoryCard, activate, keys_match, scanned_text
from store.stories import WorldInfoEntry


def fired(entries: list[StoryCard], text: str, **options: object) -> list[str]:
    return [a.entry.content for a in activate(entries, text, **options).active]  # type: ignore[arg-type]


def rolls(*values: int) -> Callable[[], int]:
    """A scripted die that fails the test if rolled more often than scripted."""
    it: Iterator[int] = iter(values)
    return lambda: next(it)


def never_roll() -> int:
    raise AssertionError("the die must not be rolled")


def card(*keys: str, **fields: object) -> StoryCard:
    fields.setdefault("content", "+".join(keys) or "C")
    return StoryCard(keys=keys, **fields)  # type: ignore[arg-type]


# ----- primary keys -----


def test_a_primary_key_fires_as_a_case_insensitive_substring() -> None:
    assert fired([card("Dragon")], "a DRAGON appears") == ["Dragon"]
    assert fired([card("cat")], "we concatenate strings") == ["cat"]  # substring, not whole word
    assert fired([card("dragon")], "a wyvern appears") == []


def test_any_one_primary_key_is_enough() -> None:
    assert fired([card("wyrm", "dragon")], "the dragon") == ["wyrm+dragon"]


def test_case_sensitive_matching_is_an_option() -> None:
    assert fired([card("Rose")], "a rose", case_sensitive=True) == []
    assert fired([card("Rose")], "Rose waved", case_sensitive=True) == ["Rose"]


def test_keys_are_stripped_and_empty_keys_never_match_everything() -> None:
    # Unstripped, " dragon " would miss "dragon," (no space after it).
    assert fired([card("  dragon ", content="D")], "the dragon, flying") == ["D"]
    assert fired([StoryCard(keys=("", " "), content="X")], "anything") == []


def test_an_entry_without_keys_only_fires_when_constant() -> None:
    assert fired([StoryCard(content="X")], "anything") == []
    assert fired([StoryCard(content="X", constant=True)], "") == ["X"]


# ----- selective logic (Lite's four cases) -----


def test_non_selective_entries_ignore_secondary_and_anti_keys() -> None:
    entry = card("king", secondary_keys=("crown",), anti_keys=("dead",))
    assert fired([entry], "the dead king") == ["king"]


@pytest.mark.parametrize(
    ("text", "fires"),
    [
        ("the king wears a crown", True),  # primary AND secondary
        ("the king", False),  # secondary missing
        ("a crown", False),  # primary missing
        ("the dead king wears a crown", False),  # anti key present
    ],
)
def test_selective_with_secondary_and_anti_keys(text: str, fires: bool) -> None:
    entry = card("king", secondary_keys=("crown", "throne"), anti_keys=("dead",), selective=True)
    assert keys_match(entry, text) is fires


def test_selective_with_only_secondary_keys_needs_both() -> None:
    entry = card("king", secondary_keys=("crown",), selective=True)
    assert fired([entry], "king crown") == ["king"]
    assert fired([entry], "the dead king") == []


def test_selective_with_only_anti_keys_needs_primary_and_no_anti() -> None:
    entry = card("king", anti_keys=("dead",), selective=True)
    assert fired([entry], "the king") == ["king"]
    assert fired([entry], "the DEAD king") == []


def test_selective_without_secondary_or_anti_keys_fires_on_primary() -> None:
    entry = card("king", secondary_keys=(" ",), selective=True)
    assert fired([entry], "the king") == ["king"]


# ----- constant, enabled, content -----


def test_constant_entries_fire_without_a_key_in_the_text() -> None:
    assert fired([card("never", constant=True)], "nothing here") == ["never"]


def test_disabled_and_empty_entries_never_fire() -> None:
    assert fired([card("a", enabled=False)], "a") == []
    assert fired([card("a", constant=True, enabled=False)], "a") == []
    assert fired([card("a", content="")], "a") == []


# ----- probability -----


def test_probability_needs_a_roll_below_it() -> None:
    entry = card("a", probability=50)
    assert fired([entry], "a", roll=rolls(49)) == ["a"]
    assert fired([entry], "a", roll=rolls(50)) == []  # 50% is really 49 in 100, as in Lite
    assert fired([entry], "a", roll=rolls(1)) == ["a"]


def test_full_probability_never_rolls_and_zero_never_fires() -> None:
    assert fired([card("a", probability=100)], "a", roll=never_roll) == ["a"]
    assert fired([card("a", probability=0)], "a", roll=rolls(1)) == []


def test_only_fired_entries_are_rolled_in_list_order() -> None:
    entries = [card("a", probability=30), card("b", probability=30), card("c", probability=30)]
    assert fired(entries, "a c", roll=rolls(10, 90)) == ["a"]  # "b" did not fire, so no roll


def test_constant_entries_are_rolled_too() -> None:
    assert fired([card("x", constant=True, probability=20)], "", roll=rolls(50)) == []


def test_default_roll_is_between_1_and_100() -> None:
    assert fired([card("a", probability=1)], "a") == []  # a roll below 1 is impossible


# ----- search depth -----


def test_search_depth_scans_only_the_last_characters() -> None:
    text = "dragon" + " " * 100 + "knight"
    assert fired([card("dragon"), card("knight")], text, search_depth=10) == ["knight"]
    assert fired([card("dragon"), card("knight")], text, search_depth=0) == ["dragon", "knight"]
    assert scanned_text("abcdef", 2) == "ef" and scanned_text("abc", 10) == "abc"
    with pytest.raises(ValueError):
        scanned_text("abc", -1)


# ----- order, placement and budget -----


def test_active_entries_keep_list_order_and_carry_their_placement() -> None:
    entries = [card("zeta"), card("alpha"), card("none"), card("mid")]
    scan = activate(entries, "mid alpha zeta", placement="before_authors_note")
    assert [a.entry.content for a in scan.active] == ["zeta", "alpha", "mid"]
    assert [a.index for a in scan.active] == [0, 1, 3]
    assert {a.placement for a in scan.active} == {"before_authors_note"}
    assert scan.text("before_authors_note") == "zeta\nalpha\nmid\n"
    assert scan.text("after_memory") == ""


def test_over_budget_entries_are_dropped_from_the_end() -> None:
    entries = [card("a", content="aaaa"), card("b", content="bbbbbbbb"), card("c", content="cc")]
    scan = activate(entries, "a b c", budget=14, count=len)
    assert [a.entry.content for a in scan.active] == ["aaaa", "bbbbbbbb"]  # 5 + 9 = 14 tokens
    assert [a.entry.content for a in scan.dropped] == ["cc"]
    assert [a.tokens for a in scan.active] == [5, 9]
    tight = activate(entries, "a b c", budget=13, count=len)
    assert [a.entry.content for a in tight.active] == ["aaaa"]  # "cc" alone would fit, but order rules
    assert activate(entries, "a b c", budget=0, count=len).active == ()


def test_a_budget_needs_a_counter() -> None:
    with pytest.raises(ValueError):
        activate([card("a")], "a", budget=10)


def test_story_world_info_entries_can_be_scanned_directly() -> None:
    entries = (
        WorldInfoEntry(keys=("ship",), secondary_keys=("storm",), selective=True, content="S"),
        WorldInfoEntry(keys=("ship",), content="T", enabled=False),
    )
    scan = activate(entries, "the ship in the storm")
    assert [a.entry for a in scan.active] == [entries[0]]
