"""A thinking budget: a thinking model thinks at most N tokens, then its block is closed
for it and it answers.

The run asks for at most N tokens (one more for the opening tag, unless the prompt
opened the block). If the model is still thinking when they run out, the closing tag is
written for it, and a second request continues from there with the tokens left; the
prompt so far is in the KV cache, so only the tag is evaluated. A model that stopped
thinking earlier, or never began, is continued as it was. Any backend serves both
requests, local or remote.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import replace

from engine.backend import Backend
from engine.prompts import THINK_CLOSE, split_thinking
from engine.types import Chunk, Finish, FinishReason, GenerationRequest

BUDGET_CLOSE = f"\n{THINK_CLOSE}\n\n"  # written when the budget runs out


def generate_within_budget(
    backend: Backend, request: GenerationRequest, halt: threading.Event
) -> Iterator[Chunk | Finish]:
    """`backend.generate(request, halt)`, with the request's thinking budget kept."""
    limit = request.params.max_new_tokens
    allowance = request.think_budget + (0 if request.thinking_opened else 1)
    if request.think_budget <= 0 or allowance >= limit:
        yield from backend.generate(request, halt)
        return
    first = replace(request, params=replace(request.params, max_new_tokens=allowance))
    text = ""
    finish: Finish | None = None
    with _closed_after(backend.generate(first, halt)) as stream:
        for item in stream:
            if isinstance(item, Finish):
                finish = item
                break
            text += item.text
            yield item
    if finish is None:
        return  # the run reports a backend that ended without saying why
    if finish.reason is not FinishReason.LENGTH or halt.is_set():
        yield finish
        return
    bridge = "" if split_thinking(text, request.thinking_opened).closed else BUDGET_CLOSE
    if bridge:
        yield Chunk(bridge)
    written = finish.usage.completion_tokens + (len(backend.tokenize(bridge)) if bridge else 0)
    if written >= limit:
        yield replace(finish, usage=replace(finish.usage, completion_tokens=written))
        return
    second = replace(
        request,
        prompt=request.prompt + text + bridge,
        params=replace(request.params, max_new_tokens=limit - written),
    )
    with _closed_after(backend.generate(second, halt)) as stream:
        for item in stream:
            if isinstance(item, Finish):
                completion = written + item.usage.completion_tokens
                yield Finish(item.reason, replace(finish.usage, completion_tokens=completion))
                return
            yield item


@contextlib.contextmanager
def _closed_after(stream: Iterator[Chunk | Finish]) -> Iterator[Iterator[Chunk | Finish]]:
    """`stream`, closed once the block ends (a backend frees its connection or slot then)."""
    try:
        yield stream
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
