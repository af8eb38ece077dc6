"""How the pieces of a character chat are written in a prompt format.

`build_character_prompt` (engine/prompts/character.py) decides what goes where; this
module decides how each piece looks in the format: turns, notes (post-history
instructions, the depth note, lore), example blocks, the tail and the stop strings.

Two kinds of format need care:

- The plain transcript is SillyTavern's non-instruct mode, whose Default context
  separates example blocks with `***` lines and writes notes as bare lines.
- Formats that fold the system prompt into the first user turn (Llama-2, Mistral,
  Gemma) leave the head open inside that turn when no message is pinned into it.
  Then whatever comes first after the head has to close the turn, so every block
  that can come first carries a `lead` rendering (see `engine.prompts.parts.Block`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from engine.lore import LoreRole
from engine.prompts.chat import Turn
from engine.prompts.examples import ExampleBlock
from engine.prompts.parts import Block
from presets.formats import PLAIN_FORMAT_ID, PromptFormat, Speakers

__all__ = ["CHAT_START", "EXAMPLE_SEPARATOR", "Mode", "TurnRenderer", "is_transcript", "stop_strings"]

Mode = Literal["reply", "continue", "impersonate"]

# SillyTavern's Default context template: a line before each example block, and one
# between the examples and the real chat.
EXAMPLE_SEPARATOR = "***"
CHAT_START = "***"


def is_transcript(fmt: PromptFormat) -> bool:
    """True for the plain `Name: text` transcript (SillyTavern's non-instruct mode)."""
    return fmt.id == PLAIN_FORMAT_ID


@dataclass(frozen=True)
class TurnRenderer:
    """Writes turns, notes and tails in one format.

    `open_head` is true when the head ends inside an open user turn (a folding format
    with no message pinned into the head); blocks then get a `lead` that closes it.
    """

    fmt: PromptFormat
    speakers: Speakers
    open_head: bool = False

    def block(self, turns: Sequence[Turn], before: str = "", after: str = "") -> Block:
        """One block of finished turns, with optional text around them."""
        text = before + "".join(self._turn(t) for t in turns) + after
        if not self.open_head or not turns:
            return Block(text)
        first = self._turn(turns[0], after_head=True)
        return Block(text, lead=before + first + "".join(self._turn(t) for t in turns[1:]) + after)

    def note(self, role: LoreRole, text: str) -> Block:
        """An instruction placed in the chat: post-history, the depth note, lore.

        A system note is a system turn where the format has its own system role, a
        bare line in the transcript, and a user turn where the system prompt is folded
        into the first user turn (the format has no system turn to offer).
        """
        if role == "system" and is_transcript(self.fmt):
            return Block(text + "\n")
        if role == "system" and self.fmt.system_placement == "own":
            wrap = self.fmt.system
            return Block(self.speakers.expand(wrap.prefix) + text + self.speakers.expand(wrap.suffix))
        return self.block([Turn("user" if role == "system" else role, text)])

    def examples(self, blocks: Sequence[ExampleBlock]) -> list[Block]:
        """Example dialogue, one block each, oldest first.

        In the transcript every block starts with a separator line, and the last one
        also ends with the chat-start line. `fit_prompt` pushes the oldest blocks out
        first, so the last block is the last to go: the chat-start line is there
        exactly while at least one example is.
        """
        if not is_transcript(self.fmt):
            return [self.block(b.turns) for b in blocks]
        separator = EXAMPLE_SEPARATOR + "\n"
        last = len(blocks) - 1
        return [
            self.block(b.turns, before=separator, after=CHAT_START + "\n" if i == last else "")
            for i, b in enumerate(blocks)
        ]

    def tail(self, mode: Mode, continued: str = "") -> Block:
        """What makes the model write: a reply, more of `continued`, or the user's line."""
        fmt, speakers = self.fmt, self.speakers
        if mode == "reply":
            lead = fmt.generation_prefix(speakers, after_head=True)
            return Block(fmt.generation_prefix(speakers), lead=lead if self.open_head else None)
        if mode == "continue":
            text = fmt.open_turn("assistant", continued, speakers)
            # After an open head, the user turn holding the system prompt is closed first.
            return Block(text, lead=speakers.expand(fmt.user.suffix) + text if self.open_head else None)
        # A trailing space would make the model start with a token it rarely sees
        # (plain "Ann: " → "Ann:"), as the formats' generation prompts already avoid.
        text = fmt.open_turn("user", "", speakers).rstrip(" ")
        # After an open head the model writes into the user turn that is already open.
        return Block(text, lead="" if self.open_head else None)

    def _turn(self, turn: Turn, *, after_head: bool = False) -> str:
        return self.fmt.turn(turn.role, turn.text, self.speakers, after_head=after_head)


def stop_strings(fmt: PromptFormat, speakers: Speakers, mode: Mode) -> tuple[str, ...]:
    """The strings that end the model's text, without duplicates.

    The format's own, plus `\\n{user}:` in the transcript. When the model writes the
    user's line (impersonate), also what would start the character's turn: `\\n{char}:`
    in the transcript, else the end of a user turn and the assistant's opening.
    """
    stops = list(fmt.stop_strings(speakers))
    transcript = is_transcript(fmt)
    if transcript:
        stops.append(f"\n{speakers.user}:")
    if mode == "impersonate":
        if transcript:
            stops.append(f"\n{speakers.char}:")
        else:
            pieces = (fmt.user.suffix, fmt.assistant.prefix, fmt.generation_prompt)
            stops.extend(speakers.expand(piece).strip() for piece in pieces)
    return tuple(dict.fromkeys(s for s in stops if s))
