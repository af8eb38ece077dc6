"""Character chat prompts, byte for byte: the card, persona, examples, lore, notes and modes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.lore.activation import Lorebook
from engine.prompts.character import (
    CannotContinueError,
    CharacterPrompt,
    CharacterSheet,
    ChatLine,
    DepthNote,
    PersonaSheet,
    build_character_prompt,
)
from engine.prompts.parts import PromptParts, fit_prompt
from presets.formats import load_builtin_formats

FORMATS = load_builtin_formats()
PLAIN, CHATML, LLAMA2 = FORMATS["plain"], FORMATS["chatml"], FORMATS["llama-2-chat"]

NEUTRAL = "Write {{char}}'s next reply in a fictional chat between {{char}} and {{user}}."
SHEET = CharacterSheet(
    name="Luna",
    description="{{char}} is a star mage.",
    personality="curious, dry humour",
    scenario="{{user}} meets {{char}} in a library.",
    post_history_instructions="Stay in character as {{char}}.",
    mes_example=(
        "<START>\n{{user}}: What is that?\n{{char}}: A star map.\n"
        "<START>\n{{user}}: Can you teach me?\n{{char}}: Of course."
    ),
)
BARE = CharacterSheet(name="Luna", description="{{char}} is a star mage.")
ANN = PersonaSheet(name="Ann", description="{{user}} is a traveller.")
CHAT = [ChatLine("assistant", "Welcome, traveller."), ChatLine("user", "Hello!")]

PLAIN_STORY = (
    "Write Luna's next reply in a fictional chat between Luna and Ann.\n"
    "Luna is a star mage.\n"
    "Luna's personality: curious, dry humour\n"
    "Scenario: Ann meets Luna in a library.\n"
    "Ann is a traveller."
)
PLAIN_EXAMPLES = (
    "***\nAnn: What is that?\nLuna: A star map.\n***\nAnn: Can you teach me?\nLuna: Of course.\n***\n"
)


def build(
    fmt: Any = PLAIN, sheet: CharacterSheet = SHEET, lines: Sequence[ChatLine] = CHAT, **options: Any
) -> CharacterPrompt:
    options.setdefault("global_system", NEUTRAL)
    return build_character_prompt(fmt, sheet, ANN, lines, count_tokens=len, **options)


def text(parts: PromptParts) -> str:
    """The whole prompt, with nothing dropped."""
    return fit_prompt(parts, 1_000_000, len).text


# --- formats ------------------------------------------------------------------------


def test_plain_transcript_with_a_full_card() -> None:
    built = build()
    assert built.parts.head == PLAIN_STORY + "\n\n"
    assert text(built.parts) == (
        PLAIN_STORY + "\n\n" + PLAIN_EXAMPLES + "Luna: Welcome, traveller.\n"
        "Ann: Hello!\n"
        "Stay in character as Luna.\n"
        "Luna:"
    )
    assert built.stop == ("\nAnn:",)
    assert (built.speakers.user, built.speakers.char) == ("Ann", "Luna")


def test_chatml_with_a_full_card() -> None:
    built = build(CHATML)
    assert text(built.parts) == (
        "<|im_start|>system\n" + PLAIN_STORY + "<|im_end|>\n"
        "<|im_start|>user\nWhat is that?<|im_end|>\n"
        "<|im_start|>assistant\nA star map.<|im_end|>\n"
        "<|im_start|>user\nCan you teach me?<|im_end|>\n"
        "<|im_start|>assistant\nOf course.<|im_end|>\n"
        "<|im_start|>assistant\nWelcome, traveller.<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n"
        "<|im_start|>system\nStay in character as Luna.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert built.stop == ("<|im_end|>", "<|im_start|>")


def test_llama2_pins_the_first_message_into_the_head() -> None:
    built = build(LLAMA2)
    head = "[INST] <<SYS>>\n" + PLAIN_STORY + "\n<</SYS>>\n\n [/INST] Welcome, traveller. </s><s>"
    assert built.parts.head == head
    assert text(built.parts) == (
        head + "[INST] What is that? [/INST] A star map. </s><s>"
        "[INST] Can you teach me? [/INST] Of course. </s><s>"
        "[INST] Hello! [/INST]"
        "[INST] Stay in character as Luna. [/INST]"
    )
    assert built.stop == ("</s>", "[INST]")


def test_llama2_with_no_message_closes_the_open_head_with_the_first_block() -> None:
    built = build(LLAMA2, lines=[])
    assert text(built.parts) == (
        "[INST] <<SYS>>\n" + PLAIN_STORY + "\n<</SYS>>\n\n"
        "What is that? [/INST] A star map. </s><s>"
        "[INST] Can you teach me? [/INST] Of course. </s><s>"
        "[INST] Stay in character as Luna. [/INST]"
    )
    # With every example pushed out, the post-history note is first and closes the turn.
    squeezed = fit_prompt(built.parts, len(built.parts.head) + 60, len)
    assert squeezed.kept_optional == 0
    assert squeezed.text.endswith("<</SYS>>\n\nStay in character as Luna. [/INST]")


# --- system prompt, macros ----------------------------------------------------------


def test_a_card_system_prompt_replaces_the_global_one_and_original_brings_it_back() -> None:
    card = replace(BARE, system_prompt="{{original}} Never write for {{user}}.")
    assert build(CHATML, card).parts.head == (
        "<|im_start|>system\n"
        "Write Luna's next reply in a fictional chat between Luna and Ann. Never write for Ann.\n"
        "Luna is a star mage.\n"
        "Ann is a traveller.<|im_end|>\n"
    )
    replacing = build(CHATML, replace(BARE, system_prompt="You are {{char}}."))
    assert replacing.parts.head == (
        "<|im_start|>system\nYou are Luna.\nLuna is a star mage.\nAnn is a traveller.<|im_end|>\n"
    )


def test_original_is_the_format_default_when_the_global_prompt_is_empty() -> None:
    vicuna = FORMATS["vicuna-1.1"]
    card = replace(BARE, system_prompt="{{original}} Play {{char}}.")
    assert build(vicuna, card, global_system="  ").parts.head == (
        vicuna.default_system + " Play Luna.\nLuna is a star mage.\nAnn is a traveller. "
    )
    assert build(vicuna, BARE, global_system="").parts.head.startswith(vicuna.default_system + "\n")


def test_original_is_empty_in_post_history_instructions() -> None:
    built = build(sheet=replace(BARE, post_history_instructions="{{original}}Be brief, {{user}}."))
    assert text(built.parts).endswith("Ann: Hello!\nBe brief, Ann.\nLuna:")


def test_the_nickname_is_char_everywhere() -> None:
    card = replace(SHEET, nickname="Lu", description="{{char}} is a star mage. <BOT> hums for <USER>.")
    built = build(sheet=card)
    assert built.speakers.char == "Lu"
    assert text(built.parts) == (
        "Write Lu's next reply in a fictional chat between Lu and Ann.\n"
        "Lu is a star mage. Lu hums for Ann.\n"
        "Lu's personality: curious, dry humour\n"
        "Scenario: Ann meets Lu in a library.\n"
        "Ann is a traveller.\n\n"
        "***\nAnn: What is that?\nLu: A star map.\n***\nAnn: Can you teach me?\nLu: Of course.\n***\n"
        "Lu: Welcome, traveller.\n"
        "Ann: Hello!\n"
        "Stay in character as Lu.\n"
        "Lu:"
    )


# --- modes --------------------------------------------------------------------------


def test_continue_extends_the_characters_last_message() -> None:
    built = build(lines=[*CHAT, ChatLine("assistant", "The map shows")], mode="continue")
    assert text(built.parts) == (
        PLAIN_STORY + "\n\n" + PLAIN_EXAMPLES + "Luna: Welcome, traveller.\n"
        "Ann: Hello!\n"
        "Stay in character as Luna.\n"
        "Luna: The map shows"
    )
    assert built.stop == ("\nAnn:",)


def test_continue_after_an_open_llama2_head_closes_the_system_turn() -> None:
    built = build(LLAMA2, BARE, lines=[CHAT[0]], mode="continue")
    assert text(built.parts) == (
        "[INST] <<SYS>>\n"
        "Write Luna's next reply in a fictional chat between Luna and Ann.\n"
        "Luna is a star mage.\n"
        "Ann is a traveller.\n"
        "<</SYS>>\n\n [/INST] Welcome, traveller."
    )


@pytest.mark.parametrize(
    "lines",
    [[], CHAT, [*CHAT, ChatLine("assistant", "hidden", hidden=True)]],
    ids=["empty", "user-last", "assistant-hidden"],
)
def test_continue_needs_the_characters_message_last(lines: list[ChatLine]) -> None:
    with pytest.raises(CannotContinueError, match="Ask for a reply instead"):
        build(lines=lines, mode="continue")


def test_impersonate_opens_a_user_turn_and_stops_at_the_character() -> None:
    built = build(mode="impersonate")
    assert text(built.parts).endswith("Ann: Hello!\nStay in character as Luna.\nAnn:")
    assert built.stop == ("\nAnn:", "\nLuna:")
    chatml = build(CHATML, BARE, mode="impersonate")
    assert text(chatml.parts).endswith("<|im_start|>user\nHello!<|im_end|>\n<|im_start|>user\n")
    assert chatml.stop == ("<|im_end|>", "<|im_start|>", "<|im_start|>assistant")
    llama2 = build(LLAMA2, BARE, mode="impersonate")
    assert text(llama2.parts).endswith("[INST] Hello! [/INST][INST]")
    assert llama2.stop == ("</s>", "[INST]", "[/INST]")


def test_hidden_messages_stay_out_of_the_prompt_and_the_lore_scan() -> None:
    lines = [CHAT[0], ChatLine("user", "Show me the map.", hidden=True), ChatLine("user", "Hello!")]
    built = build(sheet=BARE, lines=lines, books=[library()])
    assert text(built.parts) == (
        "Write Luna's next reply in a fictional chat between Luna and Ann.\n"
        "The library floats above the clouds.\n"
        "Luna is a star mage.\n"
        "Ann is a traveller.\n\n"
        "Luna: Welcome, traveller.\n"
        "Ann: Hello!\n"
        "Luna:"
    )
    assert [e.entry.name for e in built.lore.after_char] == []


def test_the_depth_note_goes_at_its_depth() -> None:
    note = DepthNote("{{char}} secretly fears the dark.", depth=1)
    lines = [*CHAT, ChatLine("assistant", "Hello, Ann."), ChatLine("user", "What now?")]
    chatml = build(CHATML, replace(BARE, depth_prompt=note), lines)
    assert text(chatml.parts).endswith(
        "<|im_start|>assistant\nHello, Ann.<|im_end|>\n"
        "<|im_start|>system\nLuna secretly fears the dark.<|im_end|>\n"
        "<|im_start|>user\nWhat now?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    plain = build(PLAIN, replace(SHEET, depth_prompt=replace(note, role="assistant")), lines)
    assert text(plain.parts).endswith(
        "Luna: Hello, Ann.\nLuna: Luna secretly fears the dark.\nAnn: What now?\n"
        "Stay in character as Luna.\nLuna:"
    )


# --- lore ---------------------------------------------------------------------------


def library() -> Lorebook:
    def entry(keys: list[str], content: str, **fields: Any) -> dict[str, Any]:
        return {
            "keys": keys,
            "content": content,
            "extensions": {},
            "enabled": True,
            "insertion_order": 100,
        } | (fields)

    return Lorebook.from_dict(
        {
            "name": "Library",
            "extensions": {},
            "entries": [
                entry([], "The library floats above the clouds.", constant=True, position="before_char"),
                entry(
                    ["map"],
                    "{{char}}'s star maps point to hidden realms.",
                    name="maps",
                    position="after_char",
                ),
                entry(
                    ["owl"], "An owl guards the stacks.", extensions={"position": 4, "depth": 1, "role": 0}
                ),
            ],
        }
    )


MAP_CHAT = [*CHAT, ChatLine("assistant", "Hello, Ann."), ChatLine("user", "Show me the map.")]


def test_character_placement_puts_lore_around_the_definition() -> None:
    built = build(sheet=BARE, lines=MAP_CHAT, books=[library()])
    assert text(built.parts) == (
        "Write Luna's next reply in a fictional chat between Luna and Ann.\n"
        "The library floats above the clouds.\n"
        "Luna is a star mage.\n"
        "Luna's star maps point to hidden realms.\n"
        "Ann is a traveller.\n\n"
        "Luna: Welcome, traveller.\n"
        "Ann: Hello!\n"
        "Luna: Hello, Ann.\n"
        "Ann: Show me the map.\n"
        "Luna:"
    )
    assert [e.entry.name for e in built.lore.after_char] == ["maps"]


def test_recent_placement_groups_lore_in_one_note_two_messages_from_the_end() -> None:
    built = build(CHATML, BARE, MAP_CHAT, books=[library()], lore_placement="recent")
    assert text(built.parts) == (
        "<|im_start|>system\n"
        "Write Luna's next reply in a fictional chat between Luna and Ann.\n"
        "Luna is a star mage.\n"
        "Ann is a traveller.<|im_end|>\n"
        "<|im_start|>assistant\nWelcome, traveller.<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n"
        "<|im_start|>system\nThe library floats above the clouds.\n"
        "Luna's star maps point to hidden realms.<|im_end|>\n"
        "<|im_start|>assistant\nHello, Ann.<|im_end|>\n"
        "<|im_start|>user\nShow me the map.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("placement", ["character", "recent"])
def test_entries_with_a_depth_go_at_their_depth_in_both_placements(placement: str) -> None:
    lines = [*CHAT, ChatLine("assistant", "An owl hoots."), ChatLine("user", "Hi, bird.")]
    built = build(sheet=BARE, lines=lines, books=[library()], lore_placement=placement)
    assert text(built.parts).endswith("Luna: An owl hoots.\nAn owl guards the stacks.\nAnn: Hi, bird.\nLuna:")
    assert "owl guards" not in built.parts.head


def test_lore_scans_messages_with_their_speakers_names() -> None:
    book = Lorebook.from_dict(
        {
            "extensions": {},
            "entries": [{"keys": ["Ann"], "content": "Ann is a cartographer.", "enabled": True}],
        }
    )
    built = build(sheet=BARE, books=[book])
    assert "Ann is a cartographer." in built.parts.head


def turns(count: int) -> list[ChatLine]:
    lines = [CHAT[0]]
    for index in range(count):
        lines += [ChatLine("user", f"Question {index}?"), ChatLine("assistant", f"Answer {index}.")]
    return lines[:-1]


@pytest.mark.parametrize("fmt", [PLAIN, CHATML, LLAMA2], ids=lambda f: f.id)
@pytest.mark.parametrize("placement", ["character", "recent"])
def test_the_head_is_byte_stable_while_the_activated_lore_is(fmt: Any, placement: str) -> None:
    heads = [
        build(fmt, lines=turns(n), books=[library()], lore_placement=placement).parts.head for n in (1, 2, 3)
    ]
    assert heads[0] == heads[1] == heads[2]
    with_map = build(
        fmt, lines=[*turns(3), ChatLine("user", "A map?")], books=[library()], lore_placement=placement
    )
    assert (with_map.parts.head == heads[0]) is (placement == "recent")


# --- fitting ------------------------------------------------------------------------


def test_examples_are_pushed_out_oldest_first_and_the_chat_start_marker_with_the_last() -> None:
    parts = build().parts
    full = fit_prompt(parts, 1_000_000, len)
    assert full.kept_optional == 2
    tail = "Luna: Welcome, traveller.\nAnn: Hello!\nStay in character as Luna.\nLuna:"
    first_block = len("***\nAnn: What is that?\nLuna: A star map.\n")
    one = fit_prompt(parts, full.n_tokens - first_block, len)
    assert one.kept_optional == 1
    assert one.text == PLAIN_STORY + "\n\n***\nAnn: Can you teach me?\nLuna: Of course.\n***\n" + tail
    none = fit_prompt(parts, full.n_tokens - first_block - 1, len)
    assert none.kept_optional == 0
    assert none.text == PLAIN_STORY + "\n\n" + tail


# --- a real card --------------------------------------------------------------------


def test_a_real_card_end_to_end(third_party: Path) -> None:
    data = json.loads((third_party / "cards" / "test-card.json").read_text(encoding="utf-8"))["data"]
    sheet = CharacterSheet(
        name=data["name"],
        description=data["description"],
        personality=data["personality"],
        scenario=data["scenario"],
        system_prompt=data["system_prompt"],
        post_history_instructions=data["post_history_instructions"],
        mes_example=data["mes_example"],
    )
    lines = [ChatLine("assistant", data["first_mes"]), ChatLine("user", "What is Celestia like at night?")]
    built = build_character_prompt(
        CHATML,
        sheet,
        ANN,
        lines,
        count_tokens=len,
        global_system=NEUTRAL,
        books=[Lorebook.from_dict(data["character_book"])],
    )
    prompt = text(built.parts)
    assert data["description"] in built.parts.head
    assert "Ann encounters Luna in the Grand Library of Celestia" in built.parts.head
    assert "Celestia is the floating city where celestial mages study the stars." in built.parts.head
    assert [e.entry.name for e in built.lore.after_char] == ["Celestia"]
    assert "<|im_start|>user\nWhat are you researching?<|im_end|>\n" in prompt
    assert data["creator_notes"] not in prompt and "soft spot" not in prompt
    assert "{{" not in prompt
    assert prompt.endswith("What is Celestia like at night?<|im_end|>\n<|im_start|>assistant\n")
