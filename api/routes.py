"""The OpenAI-compatible endpoints: GET /models, POST /completions, POST /chat/completions.

Paths here are relative to where the API is mounted (`/v1`). Every generation goes
through `ModelManager.start`, so API requests wait in the same queue as the UI's
runs, one at a time per loaded model. Each request is its own owner ("api-<uuid>"),
so stopping it, or a client that goes away, ends only that request's run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from api.deps import ApiDeps
from api.errors import BadRequestError, error_reply
from api.prompts import Prepared, chat_generation, completion_generation
from api.schemas import Generation, parse_chat_request, parse_completion_request
from api.shapes import (
    DONE,
    Kind,
    ReplyIds,
    chunk_body,
    finish_reason,
    hearth_chunk,
    logprobs_body,
    model_list,
    reply_body,
    sse,
    usage_chunk,
    with_choices,
)
from api.streaming import ReplyTrim, RunStream, run_finish, text_deltas, wait_for_run
from engine.errors import GenerationError, NoModelLoadedError
from engine.prompts import ThinkingStream, clean_reply, split_thinking
from engine.run import Run
from engine.types import GenerationRequest
from services.prompt_report import measured

MAX_BODY_BYTES = 32 * 2**20  # a chat far longer than any context still fits


def build_router(deps: ApiDeps) -> APIRouter:
    """The API's routes, bound to the app's model manager."""
    router = APIRouter()
    started = int(time.time())

    @router.get("/models")
    def list_models() -> dict[str, Any]:
        return model_list(deps.models.info, started)

    @router.post("/completions")
    async def completions(request: Request) -> Response:
        parsed = parse_completion_request(await _json(request), deps.default_params())
        _require_model(deps)
        prepared = await run_in_threadpool(completion_generation, deps.models, parsed)
        return await _reply(request, deps, "text_completion", prepared, parsed.generation)

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        parsed = parse_chat_request(await _json(request), deps.default_params())
        _require_model(deps)
        fmt, rewrite = deps.prompt_for(deps.prompt_format(), parsed.switches)
        prepared = await run_in_threadpool(chat_generation, deps.models, fmt, parsed, rewrite)
        return await _reply(request, deps, "chat.completion", prepared, parsed.generation)

    return router


async def _json(request: Request) -> Any:
    """The request body as JSON. Only `application/json` is accepted: a web page can
    send a plain-text body across origins without asking first, but not JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise BadRequestError("Send the request body as JSON, with Content-Type: application/json.")
    too_big = BadRequestError(f"The request body is larger than {MAX_BODY_BYTES // 2**20} MiB.")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_big
    body = bytearray()
    async for piece in request.stream():  # counted as it arrives: a chunked body has no length
        body += piece
        if len(body) > MAX_BODY_BYTES:
            raise too_big
    try:
        return json.loads(bytes(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequestError(f"The request body is not valid JSON: {exc}.") from exc


def _require_model(deps: ApiDeps) -> None:
    if not deps.models.loaded and deps.loading():
        raise NoModelLoadedError("The model is still loading. Try again in a moment.")
    deps.models.backend  # noqa: B018 - raises NoModelLoadedError with a plain message


async def _reply(
    request: Request, deps: ApiDeps, kind: Kind, prepared: Prepared, options: Generation
) -> Response:
    info = deps.models.info
    ids = ReplyIds.new(kind, info.name if info else options.model)
    owner = f"api-{uuid.uuid4().hex}"
    if options.stream:
        run = deps.models.start(prepared.generation, owner=owner)
        return RunStream(_events(run, ids, options, prepared), run)
    bodies = []
    for index in range(options.n):  # one after another: the model writes one reply at a time
        run = deps.models.start(_nth(prepared.generation, index), owner=owner)
        if not await wait_for_run(run, request.is_disconnected):
            return Response(status_code=204)  # the client has gone; nobody reads this
        bodies.append(_whole_reply(ids, run))
    body = with_choices(bodies)
    if options.itemize:
        body["hearth"] = await _itemized(run, prepared)
    return JSONResponse(body)


def _nth(generation: GenerationRequest, index: int) -> GenerationRequest:
    """The request for choice `index`: a fixed seed moves on by one for each, so they differ."""
    params = generation.params
    if index == 0 or params.seed < 0:
        return generation
    return replace(generation, params=replace(params, seed=params.seed + index))


def _whole_reply(ids: ReplyIds, run: Run) -> dict[str, Any]:
    finish = run_finish(run)
    logprobs = logprobs_body(ids.chat, run.logprobs) if run.request.logprobs is not None else None
    if ids.chat:
        thought = split_thinking(run.text, run.request.thinking_opened)
        return reply_body(ids, clean_reply(thought.answer), finish, thought.thinking, logprobs)
    return reply_body(ids, run.text, finish, logprobs=logprobs)


async def _itemized(run: Run, prepared: Prepared) -> dict[str, Any]:
    """What `hearth_itemize` asks for: the prompt's parts and token counts, and its text."""
    report = await run_in_threadpool(measured, run, prepared.outline)
    return {**(report.to_api() if report is not None else {}), "prompt": prepared.generation.prompt}


async def _events(run: Run, ids: ReplyIds, options: Generation, prepared: Prepared) -> AsyncIterator[bytes]:
    if ids.chat:
        yield sse(chunk_body(ids, "", role=True))
        async for chunk in _chat_chunks(run, ids):
            yield chunk
    else:
        tokens = TokenCursor(run, chat=False)
        async for delta in text_deltas(run):
            yield sse(chunk_body(ids, delta, logprobs=tokens.since_last()))
    try:
        finish = run_finish(run)
    except GenerationError as exc:
        yield sse(error_reply(exc).body())
        yield DONE
        return
    yield sse(chunk_body(ids, "", finish_reason(finish)))
    if options.include_usage:
        yield sse(usage_chunk(ids, finish.usage))
    if options.itemize:
        yield sse(hearth_chunk(ids, await _itemized(run, prepared)))
    yield DONE


async def _chat_chunks(run: Run, ids: ReplyIds) -> AsyncIterator[bytes]:
    """A chat reply's pieces: its thinking as `reasoning_content`, its answer as
    `content`, trimmed as a whole reply is."""
    split = ThinkingStream(run.request.thinking_opened)
    trim = ReplyTrim()
    tokens = TokenCursor(run, chat=True)
    async for delta in text_deltas(run):
        for event in _chat_events(ids, trim, split.feed(delta), tokens):
            yield event
    for event in _chat_events(ids, trim, split.flush(), tokens):
        yield event


def _chat_events(
    ids: ReplyIds, trim: ReplyTrim, pieces: list[tuple[str, str]], tokens: TokenCursor
) -> list[bytes]:
    """Events for the pieces; the tokens written since the last event ride on the first."""
    events = []
    for kind, piece in pieces:
        if kind == "thinking":
            events.append(sse(chunk_body(ids, "", reasoning=piece, logprobs=tokens.since_last())))
        elif text := trim.feed(piece):
            events.append(sse(chunk_body(ids, text, logprobs=tokens.since_last())))
    return events


class TokenCursor:
    """The log probabilities of the tokens a run wrote since the last call (None when the
    request did not ask for them), in the shape of the run's reply."""

    def __init__(self, run: Run, chat: bool) -> None:
        self._run = run
        self._chat = chat
        self._sent = 0
        self._offset = 0

    def since_last(self) -> dict[str, Any] | None:
        if self._run.request.logprobs is None:
            return None
        new = self._run.logprobs[self._sent :]
        self._sent += len(new)
        body = logprobs_body(self._chat, new, self._offset)
        self._offset += sum(len(t.chosen.text) for t in new)
        return body
