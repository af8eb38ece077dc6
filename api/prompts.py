"""Turning API requests into the prompts the engine runs.

A chat request goes through the same prompt model as the Chat tab: the leading system
messages become the system prompt (the format's default when there is none), the
user and assistant messages become turns, `chat_parts` lays them out in the loaded
model's format, and `ModelManager.fit` fits them into the context, dropping the oldest
messages first when they do not all fit. A system message later in the chat becomes a
system note where it stands, written the way character chats write one
(`TurnRenderer.note`). The format's stop strings apply on top of the request's.

A completion request is raw text: no format, only the request's stop strings, and a
prompt that does not fit is refused rather than cut.

Each comes with an `Outline` of its prompt, which the reply itemizes when the request
asks for it (`hearth_itemize`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from api.schemas import ChatMessage, ChatRequest, CompletionRequest, Generation
from engine.errors import ContextOverflowError
from engine.manager import ModelManager
from engine.prompts import (
    Block,
    FittedPrompt,
    PromptParts,
    Rewrite,
    Span,
    Turn,
    TurnRenderer,
    answer_of,
    chat_parts,
    stop_strings,
)
from engine.types import GenerationRequest
from presets.formats import PromptFormat, Speakers
from services.chat.thinking import prompt_opens_thinking
from services.prompt_report import Outline, span_words

# Who `{{user}}` and `{{char}}` are in an API chat: the names the Chat tab uses.
SPEAKERS = Speakers()


def chat_prompt_parts(fmt: PromptFormat, messages: Sequence[ChatMessage]) -> PromptParts:
    """The prompt parts of a chat request in `fmt`, asking for the assistant's reply."""
    leading = 0
    while leading < len(messages) and messages[leading].role == "system":
        leading += 1
    system = "\n\n".join(m.content for m in messages[:leading])
    rest = messages[leading:]
    # A reply's thinking is left out, as the thinking models' own templates leave it out.
    turns = [
        Turn("user", m.content) if m.role == "user" else Turn("assistant", answer_of(m.content))
        for m in rest
        if m.role != "system"
    ]
    parts = chat_parts(fmt, system, turns, SPEAKERS)
    if len(turns) == len(rest):
        return parts
    # Put the later system messages back where they were, between the turn blocks.
    pinned = len(turns) - len(parts.body)  # turns folded into the head come first
    blocks = iter(parts.body)
    renderer = TurnRenderer(fmt, SPEAKERS)
    body: list[Block] = []
    seen = 0
    for message in rest:
        if message.role == "system":
            body.append(replace(renderer.note("system", message.content), part="note"))
            continue
        seen += 1
        if seen > pinned:
            body.append(next(blocks))
    return replace(parts, body=body)


@dataclass(frozen=True)
class Prepared:
    """A request's generation, and what its prompt is made of."""

    generation: GenerationRequest
    outline: Outline


def chat_generation(
    models: ModelManager, fmt: PromptFormat, request: ChatRequest, rewrite: Rewrite | None = None
) -> Prepared:
    """The generation for a chat request: its fitted prompt, params and stop strings;
    `rewrite` renders it with the model's own template when `fmt` is its marked format.

    Raises:
        NoModelLoadedError, ContextOverflowError.
    """
    params = request.generation.params
    parts = chat_prompt_parts(fmt, request.messages)
    # Room for at most half the context is kept for the reply; a reply asked to be longer
    # ends where the context does, as llama.cpp's server has it.
    backend = models.backend
    reserve = min(params.max_new_tokens, backend.n_ctx // 2)
    fitted = models.fit(parts, replace(params, max_new_tokens=reserve), rewrite=rewrite)
    room = backend.n_ctx - fitted.n_tokens - (1 if backend.adds_bos else 0)
    params = replace(params, max_new_tokens=max(1, min(params.max_new_tokens, room)))
    stops = (*stop_strings(fmt, SPEAKERS, "reply"), *request.generation.stop)
    stops = tuple(dict.fromkeys(stops))
    opened = prompt_opens_thinking(fitted.text)
    plain = GenerationRequest(fitted.text, params, stops, thinking_opened=opened)
    generation = steered(plain, request.generation)
    return Prepared(generation, _chat_outline(fitted, parts, len(request.messages)))


def _chat_outline(fitted: FittedPrompt, parts: PromptParts, messages: int) -> Outline:
    """The messages in the prompt, numbered as in the request (1 is the first)."""
    kept = len(parts.body) - fitted.start
    first = messages - kept + 1
    detail = f"{kept} of {len(parts.body)} messages after the head: {span_words(range(first, messages + 1))}"
    dropped = (f"{fitted.start} older messages",) if fitted.start else ()
    return Outline(fitted, "api", {"history": detail if kept else ""}, dropped)


def completion_generation(models: ModelManager, request: CompletionRequest) -> Prepared:
    """The generation for a completion request, once its prompt is known to fit.

    Raises:
        NoModelLoadedError, ContextOverflowError.
    """
    backend = models.backend
    params = request.generation.params
    # Counted without the manager's cache: API prompts are one-offs, and can be large.
    used = backend.count_tokens(request.prompt)
    room = backend.n_ctx - used - (1 if backend.adds_bos else 0)
    if room < 1:
        raise ContextOverflowError(
            f"The prompt is {used} tokens, and the model's context holds {backend.n_ctx} with the "
            "reply: shorten the prompt."
        )
    # A reply asked to be longer than the room left ends where the context does (llama.cpp's server's way).
    params = replace(params, max_new_tokens=min(params.max_new_tokens, room))
    fitted = FittedPrompt(
        text=request.prompt,
        head="",
        start=0,
        kept_optional=0,
        n_tokens=used,
        budget=backend.n_ctx - params.max_new_tokens - (1 if backend.adds_bos else 0),
        part_tokens={"body": used},
        spans=(Span(0, len(request.prompt), "prompt"),),
    )
    plain = GenerationRequest(request.prompt, params, request.generation.stop)
    generation = steered(plain, request.generation)
    return Prepared(generation, Outline(fitted, "api", {}))


def steered(request: GenerationRequest, generation: Generation) -> GenerationRequest:
    """`request` with what the body asked of the tokens (`api.steering`)."""
    return replace(request, **asdict(generation.steering))
