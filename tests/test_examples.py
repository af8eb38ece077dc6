"""Example dialogue: `<START>` blocks, speaker lines, and real cards' examples."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

from engine.prompts.chat import Turn
from engine.prompts.examples import ExampleBlock, parse_examples, split_examples
from engine.prompts.macros import MacroContext

CTX = MacroContext(user="Ann", char="Aqua")


def roles(block: ExampleBlock) -> list[str]:
    return [turn.role for turn in block.turns]


def test_start_splits_blocks_and_names_start_turns() -> None:
    blocks = parse_examples(
        "<START>\n{{user}}: Hi\n{{char}}: Hello!\n<START>\n{{user}}: Bye\n{{char}}: See you.", CTX
    )
    assert [b.turns for b in blocks] == [
        (Turn("user", "Hi"), Turn("assistant", "Hello!")),
        (Turn("user", "Bye"), Turn("assistant", "See you.")),
    ]
    assert blocks[0].text == "Ann: Hi\nAqua: Hello!"


def test_a_missing_leading_start_is_implied() -> None:
    blocks = parse_examples("{{user}}: Hi\n{{char}}: Hello!\n<START>\n{{char}}: Again.", CTX)
    assert len(blocks) == 2
    assert blocks[1].turns == (Turn("assistant", "Again."),)


def test_start_is_case_insensitive() -> None:
    assert len(parse_examples("<start>\n{{user}}: a\n<Start>\n{{user}}: b", CTX)) == 2


def test_empty_or_bare_start_gives_no_examples() -> None:
    for text in ("", "   \n", "<START>", "<START>\n<START>\n", "<START>\nNarration with no speaker."):
        assert parse_examples(text, CTX) == []


def test_following_lines_continue_the_current_turn() -> None:
    (block,) = parse_examples("{{char}}: *waves*\nHello there.\n\nHow are you?\n{{user}}: Fine.", CTX)
    assert block.turns == (Turn("assistant", "*waves*\nHello there.\n\nHow are you?"), Turn("user", "Fine."))


def test_lines_before_the_first_speaker_belong_to_no_turn() -> None:
    (block,) = parse_examples("A quiet tavern.\n{{user}}: Hi", CTX)
    assert block.turns == (Turn("user", "Hi"),)
    assert block.text == "A quiet tavern.\nAnn: Hi"


def test_legacy_tags_and_real_names_start_turns() -> None:
    (block,) = parse_examples("<USER>: one\n<BOT>: two\nAnn: three\nAqua: four", CTX)
    assert roles(block) == ["user", "assistant", "user", "assistant"]


def test_a_name_must_be_followed_by_a_colon() -> None:
    (block,) = parse_examples("{{char}}: Yes.\nAnnabel: not a speaker line", CTX)
    assert block.turns == (Turn("assistant", "Yes.\nAnnabel: not a speaker line"),)


def test_the_nickname_is_the_assistant_speaker() -> None:
    (block,) = parse_examples(
        "{{user}}: Hi\n{{char}}: Hey.", MacroContext(user="Ann", char="Aqua", char_nickname="Aq")
    )
    assert block.turns == (Turn("user", "Hi"), Turn("assistant", "Hey."))
    assert block.text == "Ann: Hi\nAq: Hey."


def test_windows_line_endings_are_read() -> None:
    (block,) = parse_examples("<START>\r\n{{user}}: Hi\r\n{{char}}: Hello\r\nagain", CTX)
    assert block.turns == (Turn("user", "Hi"), Turn("assistant", "Hello\nagain"))


def test_empty_turns_are_dropped() -> None:
    (block,) = parse_examples("{{user}}:\n{{char}}: Hi", CTX)
    assert block.turns == (Turn("assistant", "Hi"),)


def test_already_expanded_text_can_be_split_directly() -> None:
    (block,) = split_examples("Ann: Hi\nAqua: Hey", user="Ann", char="Aqua")
    assert roles(block) == ["user", "assistant"]


# --- real cards ---------------------------------------------------------------------


def png_card(path: Path) -> dict[str, Any]:
    """The JSON in a PNG card's `chara` tEXt chunk (a minimal chunk walk for this test)."""
    data = path.read_bytes()
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt":
            keyword, _, value = body.partition(b"\0")
            if keyword.lower() == b"chara":
                card: dict[str, Any] = json.loads(base64.b64decode(value))
                return card
    raise AssertionError(f"{path.name} has no chara chunk")


def test_aqua_json_has_no_examples(third_party: Path) -> None:
    card = json.loads((third_party / "cards" / "Aqua.json").read_text(encoding="utf-8"))
    assert card["mes_example"] == ""
    assert parse_examples(card["mes_example"], MacroContext(user="Ann", char=card["name"])) == []


def test_aqua_png_examples(third_party: Path) -> None:
    card = png_card(third_party / "cards" / "Aqua.png")
    blocks = parse_examples(card["mes_example"], MacroContext(user="Kazuma", char=card["name"]))
    assert [roles(b) for b in blocks] == [["user", "assistant", "user", "assistant"], ["user", "assistant"]]
    assert blocks[0].turns[0] == Turn("user", "Hi Aqua, I heard you like to spend time in the pub.")
    assert blocks[0].turns[3].text.endswith("*gives signals to the bartender*")
    assert blocks[1].turns[1].text.startswith("*excitedly* Hello there, dear!")
    assert all("\r" not in t.text for b in blocks for t in b.turns)


def test_example_json_dialogue(third_party: Path) -> None:
    card = json.loads((third_party / "cards" / "Example.json").read_text(encoding="utf-8"))
    ctx = MacroContext(user="You", char=card["char_name"])
    (block,) = parse_examples(card["example_dialogue"], ctx)
    assert roles(block) == ["user", "assistant"] * 5
    assert block.turns[0] == Turn("user", "So how did you get into computer engineering?")
    assert block.turns[-1] == Turn(
        "assistant", "Yeah, it's really fun. I'm lucky to be able to do this as a job."
    )
