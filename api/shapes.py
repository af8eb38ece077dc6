"""The JSON shapes the API answers with, as OpenAI defines them.

A reply is a `text_completion` (POST /v1/completions) or a `chat.completion`
(POST /v1/chat/completions). Streamed, each becomes Server-Sent Events: chunks of
text, a last chunk with the finish reason, optionally one with the token counts
(`stream_options.include_usage`), then `data: [DONE]`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engine.types import Finish, FinishReason, ModelInfo, TokenChoice, TokenLogprob, Usage

Kind = Literal["text_completion", "chat.completion"]

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class ReplyIds:
    """What every body and chunk of one reply repeats."""

    kind: Kind
    id: str
    created: int
    model: str

    @classmethod
    def new(cls, kind: Kind, model: str) -> ReplyIds:
        prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
        return cls(kind, f"{prefix}-{uuid.uuid4().hex}", int(time.time()), model)

    @property
    def chat(self) -> bool:
        return self.kind == "chat.completion"


def finish_reason(finish: Finish) -> str:
    """OpenAI's finish reason: "length" at max_tokens or a full context, else "stop"."""
    return "length" if finish.reason is FinishReason.LENGTH else "stop"


def usage_body(usage: Usage) -> dict[str, int]:
    total = usage.prompt_tokens + usage.completion_tokens
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": total,
    }


def reply_body(
    ids: ReplyIds, text: str, finish: Finish, reasoning: str = "", logprobs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole reply of a request that did not stream; a chat reply's thinking goes in
    `reasoning_content` (llama.cpp's server and DeepSeek's API name it so)."""
    choice: dict[str, Any] = {"index": 0, "logprobs": logprobs, "finish_reason": finish_reason(finish)}
    if ids.chat:
        choice["message"] = {"role": "assistant", "content": text}
        if reasoning:
            choice["message"]["reasoning_content"] = reasoning
    else:
        choice["text"] = text
    return {**_envelope(ids, ids.kind), "choices": [choice], "usage": usage_body(finish.usage)}


def with_choices(bodies: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Replies to one request as its choices, numbered; the prompt is counted once."""
    first = dict(bodies[0])
    first["choices"] = [{**body["choices"][0], "index": i} for i, body in enumerate(bodies)]
    written = sum(body["usage"]["completion_tokens"] for body in bodies)
    usage = first["usage"]
    first["usage"] = {**usage, "completion_tokens": written, "total_tokens": usage["prompt_tokens"] + written}
    return first


def chunk_body(
    ids: ReplyIds,
    text: str,
    reason: str | None = None,
    *,
    role: bool = False,
    reasoning: str = "",
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One streamed chunk: a piece of text (or of a chat reply's thinking, `reasoning`),
    or (with `reason`) the end of the reply.

    A chat stream opens with a chunk whose delta names the role (`role=True`) and
    closes with an empty delta carrying the finish reason.
    """
    choice: dict[str, Any] = {"index": 0, "logprobs": logprobs, "finish_reason": reason}
    if ids.chat:
        delta: dict[str, str] = {"role": "assistant", "content": ""} if role else {}
        if text:
            delta["content"] = text
        if reasoning:
            delta["reasoning_content"] = reasoning
        choice["delta"] = delta
    else:
        choice["text"] = text
    return {**_envelope(ids, _chunk_kind(ids)), "choices": [choice]}


def logprobs_body(chat: bool, tokens: Sequence[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """Tokens and their log probabilities, in the shape of a chat reply (`content`) or of a
    completion (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset` from `offset`)."""
    if chat:
        return {"content": [{**_token(t.chosen), "top_logprobs": [_token(c) for c in t.top]} for t in tokens]}
    offsets, at = [], offset
    for token in tokens:
        offsets.append(at)
        at += len(token.chosen.text)
    return {
        "tokens": [t.chosen.text for t in tokens],
        "token_logprobs": [t.chosen.logprob for t in tokens],
        "top_logprobs": [{c.text: c.logprob for c in t.top} for t in tokens],
        "text_offset": offsets,
    }


def _token(choice: TokenChoice) -> dict[str, Any]:
    raw = choice.raw or choice.text.encode()
    return {"token": choice.text, "logprob": choice.logprob, "bytes": list(raw)}


def usage_chunk(ids: ReplyIds, usage: Usage) -> dict[str, Any]:
    """The chunk after the last one that carries the token counts, with no choices."""
    return {**_envelope(ids, _chunk_kind(ids)), "choices": [], "usage": usage_body(usage)}


def hearth_chunk(ids: ReplyIds, hearth: dict[str, Any]) -> dict[str, Any]:
    """The chunk before `[DONE]` that carries what `hearth_itemize` asked for, with no choices."""
    return {**_envelope(ids, _chunk_kind(ids)), "choices": [], "hearth": hearth}


def model_list(info: ModelInfo | None, created: int) -> dict[str, Any]:
    """GET /v1/models: the loaded model, or an empty list."""
    models = (
        []
        if info is None
        else [{"id": info.name, "object": "model", "created": created, "owned_by": "hearth"}]
    )
    return {"object": "list", "data": models}


def sse(data: dict[str, Any]) -> bytes:
    """One Server-Sent Event holding `data` as JSON."""
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _chunk_kind(ids: ReplyIds) -> str:
    return "chat.completion.chunk" if ids.chat else "text_completion"


def _envelope(ids: ReplyIds, kind: str) -> dict[str, Any]:
    return {"id": ids.id, "object": kind, "created": ids.created, "model": ids.model}
