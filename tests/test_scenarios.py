"""Scenarios: the built-ins, placeholder questions and answers, and invalid files."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EngineError
from engine.lore.worldinfo import activate
from engine.prompts import scenario as scenario_module
from engine.prompts.scenario import (
    MissingAnswersError,
    ScenarioError,
    ScenarioFormatError,
    load_builtin_scenarios,
    load_scenario_file,
    parse_scenario,
)
from store.stories import WorldInfoEntry


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": 1,
        "title": "Test",
        "prompt": "You are ${name}, from ${town}. ${name} waits.",
        "memory": "[${name} is brave.]",
        "authors_note": "Tone for ${ name }.",
        "story_cards": [
            {"keys": ["${town}", "gate"], "content": "${town} has a gate.", "comment": "${name}'s home"}
        ],
    }
    data.update(changes)
    return data


# ----- built-ins -----


def test_the_three_builtin_scenarios_load_and_validate() -> None:
    scenarios = load_builtin_scenarios()
    assert {s.genre for s in scenarios} == {"fantasy", "mystery", "science fiction"}
    for scenario in scenarios:
        assert scenario.builtin and scenario.mode == "adventure"
        assert scenario.memory and scenario.authors_note and scenario.description
        assert 1 <= len(scenario.cards) <= 2
        assert scenario.questions()
        assert "You" in scenario.prompt  # told in the second person
        assert len(scenario.prompt) <= 2000  # AI Dungeon's limit for a scenario prompt


def test_every_builtin_starts_with_all_placeholders_filled() -> None:
    for scenario in load_builtin_scenarios():
        start = scenario.start({q: "Quill" for q in scenario.questions()})
        texts = [start.prompt, start.memory, start.authors_note] + [c.content for c in start.cards]
        assert all("${" not in text for text in texts), scenario.id
        assert "Quill" in start.prompt and start.title == scenario.title


def test_builtin_story_cards_fire_on_their_own_opening() -> None:
    for scenario in load_builtin_scenarios():
        start = scenario.start({q: "Quill" for q in scenario.questions()})
        assert activate(start.cards, start.prompt).active, scenario.id


# ----- placeholders -----


def test_questions_come_in_order_of_first_appearance_each_once() -> None:
    scenario = parse_scenario(minimal(), "t")
    assert scenario.questions() == ("name", "town")  # "${ name }" is the same question


def test_answers_fill_every_text_and_card() -> None:
    start = parse_scenario(minimal(), "t").start({"name": " Ada ", "town": "Brill"})
    assert start.prompt == "You are Ada, from Brill. Ada waits."
    assert start.memory == "[Ada is brave.]" and start.authors_note == "Tone for Ada."
    card = start.cards[0]
    assert (
        card.keys == ("Brill", "gate")
        and card.content == "Brill has a gate."
        and card.comment == "Ada's home"
    )


def test_answers_are_inserted_literally_never_expanded() -> None:
    start = parse_scenario(minimal(), "t").start({"name": "${town}", "town": r"\1 \g<0> {0} {{x}}"})
    assert start.prompt == r"You are ${town}, from \1 \g<0> {0} {{x}}. ${town} waits."


def test_missing_answers_are_listed() -> None:
    scenario = parse_scenario(minimal(), "t")
    with pytest.raises(MissingAnswersError) as caught:
        scenario.start({"name": "   "})
    assert caught.value.missing == ("name", "town")
    assert '"name"' in str(caught.value) and '"town"' in str(caught.value)
    assert isinstance(caught.value, EngineError)


def test_overlong_answers_are_refused() -> None:
    with pytest.raises(ScenarioError, match="over 500"):
        parse_scenario(minimal(), "t").start({"name": "x" * 501, "town": "y"})


def test_a_scenario_without_placeholders_starts_with_no_answers() -> None:
    start = parse_scenario(
        minimal(prompt="You wake.", memory="", authors_note="", story_cards=[]), "t"
    ).start({})
    assert start.prompt == "You wake." and start.cards == ()


def test_started_cards_become_story_world_info_entries() -> None:
    start = parse_scenario(minimal(), "t").start({"name": "Ada", "town": "Brill"})
    entry = WorldInfoEntry(**asdict(start.cards[0]))
    assert entry.keys == ("Brill", "gate") and entry.content == "Brill has a gate." and entry.extra == {}


def test_secondary_keys_make_a_card_selective_unless_told_otherwise() -> None:
    cards = [
        {"keys": ["a"], "secondary_keys": ["b"], "content": "X"},
        {"keys": ["a"], "secondary_keys": ["b"], "selective": False, "content": "Y"},
    ]
    scenario = parse_scenario(minimal(story_cards=cards), "t")
    assert [c.selective for c in scenario.cards] == [True, False]


# ----- invalid files -----


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema_version": 2}, "schema_version must be 1"),
        ({"schema_version": None}, "schema_version"),
        ({"title": "  "}, "title cannot be empty"),
        ({"prompt": 5}, "prompt must be text"),
        ({"mode": "chat"}, "mode must be"),
        ({"surprise": 1}, "unknown field"),
        ({"story_cards": {}}, "story_cards must be a list"),
        ({"story_cards": ["x"]}, "story card 1 is not a JSON object"),
        ({"story_cards": [{"content": "x"}]}, "needs at least one key"),
        ({"story_cards": [{"keys": "a", "content": "x"}]}, "keys must be a list"),
        ({"story_cards": [{"keys": [""], "content": "x"}]}, "keys must be a list of non-empty"),
        ({"story_cards": [{"keys": ["a"], "content": ""}]}, "content cannot be empty"),
        ({"story_cards": [{"keys": ["a"], "content": "x", "probability": 101}]}, "probability"),
        ({"story_cards": [{"keys": ["a"], "content": "x", "constant": "yes"}]}, "true or false"),
        ({"story_cards": [{"keys": ["a"], "content": "x", "priority": 1}]}, "unknown field"),
        ({"prompt": "You are ${}."}, "placeholder has no question"),
        ({"prompt": "${" + "q" * 201 + "}"}, "over 200"),
        ({"prompt": " ".join(f"${{q{i}}}" for i in range(21))}, "more than 20"),
        ({"prompt": "x" * 20_001}, "over 20,000"),
    ],
)
def test_invalid_scenarios_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioFormatError, match=message):
        parse_scenario(minimal(**changes), "bad")


def test_invalid_scenario_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(ScenarioFormatError, match="broken.json"):
        load_scenario_file(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(ScenarioFormatError, match="JSON object"):
        load_scenario_file(listed)
    with pytest.raises(ScenarioFormatError, match="missing.json"):
        load_scenario_file(tmp_path / "missing.json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(minimal()))
    assert load_scenario_file(good, builtin=False).id == "good"
    monkeypatch.setattr(scenario_module, "MAX_SCENARIO_BYTES", 10)
    with pytest.raises(ScenarioFormatError, match="cannot be over"):
        load_scenario_file(good)
