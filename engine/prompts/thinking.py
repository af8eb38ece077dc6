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
    block, so a reply without the closing tag yet is all thinking. The line breaks after
    the closing tag go; a space the answer starts with stays (a story continues after it)."""
    if opened and THINK_CLOSE not in text:
        return Thought(text.strip(), "", closed=False)
    lead = text.lstrip()
    if lead.startswith(THINK_OPEN):
        body = lead[len(THINK_OPEN) :]
        end = body.find(THINK_CLOSE)
        if end < 0:
            return Thought(body.strip(), "", closed=False)
        return Thought(body[:end].strip(), body[end + len(THINK_CLOSE) :].lstrip("\n"))
    end = text.find(THINK_CLOSE)
    if end >= 0 and THINK_OPEN not in text[:end]:  # the template opened the block in the prompt
        return Thought(text[:end].strip(), text[end + len(THINK_CLOSE) :].lstrip("\n"))
    return Thought("", text)


def as_kept(text: str, opened: bool) -> str:
    """A reply as it is stored: with the opening tag its prompt wrote (`opened`), so it reads
    the same without the prompt; above all a thought cut off before its closing tag."""
    if opened and not text.lstrip().startswith(THINK_OPEN):
        return f"{THINK_OPEN}\n{text.lstrip()}"
    return text


def answer_of(text: str) -> str:
    """`text` without its thinking ("" while the model is still thinking)."""
    thought = split_thinking(text)
    return thought.answer if thought.thought else text


class ThinkingStream:
    """Splits a reply into thinking and answer while it streams, piece by piece, as
    llama.cpp's server does for `reasoning_content`. A tag may arrive split across
    pieces, so text that could still become one is held until it cannot."""

    def __init__(self, opened: bool = False) -> None:
        self._state = "thinking" if opened else "start"
        self._held = ""

    def feed(self, piece: str) -> list[tuple[str, str]]:
        """("thinking" or "answer", text) pieces that are now certain, in order."""
        text, self._held = self._held + piece, ""
        out: list[tuple[str, str]] = []
        if self._state == "start":
            lead = text.lstrip()
            if lead.startswith(THINK_OPEN):
                text, self._state = lead[len(THINK_OPEN) :], "thinking"
            elif not lead or THINK_OPEN.startswith(lead):  # it may still become the tag
                self._held = text
                return out
            else:
                self._state = "answer"
        if self._state == "thinking":
            end = text.find(THINK_CLOSE)
            if end < 0:
                keep = _partial_tag(text, THINK_CLOSE)
                self._held = text[len(text) - keep :] if keep else ""
                text = text[: len(text) - keep]
                return [("thinking", text)] if text else out
            if end:
                out.append(("thinking", text[:end]))
            text, self._state = text[end + len(THINK_CLOSE) :], "answer"
        if text:
            out.append(("answer", text))
        return out

    def flush(self) -> list[tuple[str, str]]:
        """What was held, once the reply has ended."""
        held, self._held = self._held, ""
        if not held:
            return []
        return [("thinking" if self._state == "thinking" else "answer", held)]


def _partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of `text` could be the start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
