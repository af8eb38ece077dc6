"""Chat mode's view of the prompt model: turns in a prompt format become `PromptParts`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from engine.prompts.parts import Block, Label, PromptParts
from presets.formats import PromptFormat, Speakers

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Turn:
    """One message as the prompt sees it."""

    role: Role
    text: str


def system_text(fmt: PromptFormat, system_prompt: str, speakers: Speakers) -> str:
    """The system prompt to use: the user's, else the format's default, names filled in."""
    return speakers.expand(system_prompt.strip() or fmt.default_system)


def chat_parts(
    fmt: PromptFormat,
    system_prompt: str,
    turns: Sequence[Turn],
    speakers: Speakers,
) -> PromptParts:
    """The parts of a prompt that asks for the assistant's next reply.

    Formats that fold the system prompt into the first user turn (Llama-2, Mistral,
    Gemma) render that first message differently from every other. It is pinned into
    the head, so the text after any cut is always rendered the same way: the head stays
    byte-stable and a context shift finds the cached tokens it keeps.
    """
    system = system_text(fmt, system_prompt, speakers)
    head = fmt.head(system, speakers)
    labels = [Label("system", system)]
    folded = bool(head) and fmt.system_placement == "first_user"
    # With no message at all, the head ends inside an open user turn that the tail closes.
    open_head = folded and not turns
    if folded and turns:
        pinned = fmt.turn(turns[0].role, turns[0].text, speakers, after_head=True)
        head += pinned
        labels.append(Label("history", pinned))
        turns = turns[1:]
    body = [Block(fmt.turn(t.role, t.text, speakers), part="history") for t in turns]
    tail = Block(
        fmt.generation_prefix(speakers),
        lead=fmt.generation_prefix(speakers, after_head=True) if open_head else None,
    )
    return PromptParts(head=head, body=body, tail=tail, keep_last=1, head_labels=tuple(labels))


def clean_reply(text: str) -> str:
    """Trim the whitespace models put around a reply."""
    return text.strip()
