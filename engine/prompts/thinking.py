"""What a thinking model thought, apart from what it answered.

Reasoning models (Qwen3, DeepSeek-R1 and its distills, GLM, QwQ) write their reasoning
between `<think>` and `</think>` before the answer. Some chat templates open the block
in the prompt themselves (DeepSeek-R1's ends the assistant's header with `<think>`), so
the reply then holds only the closing tag. Both shapes are read here.

The whole reply is what is stored, so nothing the model wrote is lost; the reasoning is
left out of later prompts, the story's text and exports by the callers, through
`answer_of`.
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class Thought:
    """A reply, split: `thinking` is "" when the model did not think; `closed` is False
    while it is still thinking (the answer has not begun)."""

    thinking: str
    answer: str
    closed: bool = True

    @property
    def thought(self) -> bool:
        return bool(self.thinking) or not self.closed


def split_thinking(text: str, opened: bool = False) -> Thought:
    """`text` as what was thought and what was answered. `opened`: the prompt opened the
    block, so a reply without the closing tag yet is all thinking."""
    if opened and THINK_CLOSE not in text:
        return Thought(text.strip(), "", closed=False)
    lead = text.lstrip()
    if lead.startswith(THINK_OPEN):
        body = lead[len(THINK_OPEN) :]
        end = body.find(THINK_CLOSE)
        if end < 0:
            return Thought(body.strip(), "", closed=False)
        return Thought(body[:end].strip(), body[end + len(THINK_CLOSE) :].lstrip())
    end = text.find(THINK_CLOSE)
    if end >= 0 and THINK_OPEN not in text[:end]:  # the template opened the block in the prompt
        return Thought(text[:end].strip(), text[end + len(THINK_CLOSE) :].lstrip())
    return Thought("", text)


def answer_of(text: str) -> str:
    """`text` without its thinking ("" while the model is still thinking)."""
    thought = split_thinking(text)
    return thought.answer if thought.thought else text
