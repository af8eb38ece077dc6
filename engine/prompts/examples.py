"""Example dialogue: a card's `mes_example` split into blocks of turns.

`<START>` (any case) begins a block; text before the first one is a block too, as if
`<START>` had been written. Inside a block a line that starts with the user's name and
a colon begins a user turn, the character's name and a colon an assistant turn, and
other lines continue the current turn. The names are the real ones: macros are
expanded first, so `{{user}}:` and `{{char}}:` lines (and `<USER>:`/`<BOT>:`) match.

Lines before a block's first turn are narration with no speaker; they stay in the
block's text but belong to no turn. A block with no turns is dropped, so every block
returned has something to show the model. The prompt assembler puts the blocks in
`PromptParts.optional`, where the oldest are pushed out first as the chat grows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.prompts.chat import Role, Turn
from engine.prompts.macros import MacroContext, expand_macros

__all__ = ["ExampleBlock", "parse_examples", "split_examples"]

_START = re.compile(r"<START>", re.IGNORECASE)


@dataclass(frozen=True)
class ExampleBlock:
    """One example conversation: its turns, and its text with macros expanded."""

    turns: tuple[Turn, ...]
    text: str


def parse_examples(mes_example: str, ctx: MacroContext) -> list[ExampleBlock]:
    """Expand the macros in a card's `mes_example` and split it into example blocks."""
    return split_examples(expand_macros(mes_example, ctx), user=ctx.user, char=ctx.char_display)


def split_examples(text: str, *, user: str, char: str) -> list[ExampleBlock]:
    """Split example dialogue whose macros are already expanded into blocks of turns.

    Args:
        user: the name that starts a user line (`user:`).
        char: the name that starts an assistant line (the nickname, if the card has one).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks: list[ExampleBlock] = []
    for piece in _START.split(text):
        body = piece.strip()
        turns = _turns(body, user, char)
        if turns:
            blocks.append(ExampleBlock(turns=turns, text=body))
    return blocks


def _turns(block: str, user: str, char: str) -> tuple[Turn, ...]:
    # The user's name is checked first, as SillyTavern does when both names are equal.
    names: tuple[tuple[Role, str], ...] = (("user", user), ("assistant", char))
    speakers = [(role, f"{name}:") for role, name in names if name]
    turns: list[tuple[Role, list[str]]] = []
    for line in block.split("\n"):
        speaker = next(((role, prefix) for role, prefix in speakers if line.startswith(prefix)), None)
        if speaker is not None:
            turns.append((speaker[0], [line[len(speaker[1]) :]]))
        elif turns:
            turns[-1][1].append(line)
    built = (Turn(role, "\n".join(lines).strip()) for role, lines in turns)
    return tuple(turn for turn in built if turn.text)
