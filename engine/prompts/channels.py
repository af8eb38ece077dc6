"""gpt-oss's channels, read as the thinking block every other thinking model writes.

gpt-oss (OpenAI's "harmony" format) does not write `<think>`: it opens each part of its
answer with a channel, its thinking in `analysis` and its answer in `final`:

    <|channel|>analysis<|message|>The user asks…<|end|><|start|>assistant<|channel|>final<|message|>Hello!

`HarmonyStream` rewrites that, as it streams, to `<think>The user asks…</think>Hello!`, so
the folding, the budget's count, the exports and the prompts of later turns treat it
as they treat any thinking (`engine.prompts.thinking`). Other channels (`commentary`,
for tool calls) lose their markers and keep their text.

The markers are special tokens, which llama.cpp leaves out of the text unless asked:
the backend asks for them for a model whose template has channels (`uses_channels`).
"""

from __future__ import annotations

import re

from engine.prompts.thinking import THINK_CLOSE, THINK_OPEN

CHANNEL = "<|channel|>"
# A channel header, with what may come before it: the end of the previous message and
# the assistant's start. `to=…` and `<|constrain|>…` ride along on tool-call headers.
_HEADER = re.compile(
    r"(?:<\|end\|>)?(?:<\|start\|>assistant)?<\|channel\|>(\w+)[^<]*(?:<\|constrain\|>[^<]*)?<\|message\|>"
)
_STARTS = ("<|end|>", "<|start|>", CHANNEL)
_LONGEST_HEADER = 200  # past this, text that began like a header is let through as it is


def uses_channels(chat_template: str) -> bool:
    """Whether a model writes harmony channels, by its chat template."""
    return CHANNEL in chat_template


class HarmonyStream:
    """Rewrites streamed harmony text to `<think>` blocks; `feed` each piece, then `close`."""

    def __init__(self) -> None:
        self._held = ""  # text that may still turn out to be a channel header
        self._thinking = False

    def feed(self, text: str) -> str:
        self._held += text
        out: list[str] = []
        while (header := _HEADER.search(self._held)) is not None:
            out.append(self._held[: header.start()])
            out.append(self._switch(header.group(1)))
            self._held = self._held[header.end() :]
        keep = _possible_header(self._held)
        out.append(self._held[:keep])
        self._held = self._held[keep:]
        return "".join(out)

    def close(self) -> str:
        """What is still held: a header cut short is dropped, other text kept."""
        rest, self._held = self._held, ""
        return "" if rest.startswith(_STARTS) else rest

    def _switch(self, channel: str) -> str:
        if channel == "analysis":
            opened = not self._thinking
            self._thinking = True
            return THINK_OPEN if opened else ""
        closing = self._thinking
        self._thinking = False
        return THINK_CLOSE if closing else ""


def _possible_header(text: str) -> int:
    """Where a header that has not arrived in full may begin in `text` (its length if nowhere)."""
    at = text.find("<")
    while at >= 0:
        tail = text[at:]
        if len(tail) <= _LONGEST_HEADER and any(s.startswith(tail) or tail.startswith(s) for s in _STARTS):
            return at
        at = text.find("<", at + 1)
    return len(text)
