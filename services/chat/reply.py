"""Generating in a chat: a reply, a new version of the last reply, a continuation, or
the user's next line (impersonate). Plain functions of typed values; no widgets.

Every mode builds its prompt with `engine.prompts.character` (a chat without a
character uses a plain assistant sheet), fits it to the context, starts a run, and
registers what to save when the run ends, so the result is kept even if the browser
that asked for it goes away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

from engine.errors import ContextOverflowError
from engine.prompts import (
    THINK_OPEN,
    CharacterPrompt,
    ChatLine,
    FittedPrompt,
    answer_of,
    as_kept,
    build_character_prompt,
    clean_reply,
    split_thinking,
)
from engine.run import Run
from engine.types import IMAGE_MARKER, FinishReason, GenerationRequest
from services.chat import actions as chat_actions
from services.chat.bubbles import message_html
from services.chat.characters import prompt_inputs
from services.chat.logic import ChatView, active_format, ensure_session, settings_for
from services.chat.pictures import attached
from services.chat.thinking import (
    chat_format,
    model_thinks,
    prompt_opens_thinking,
    template_switches,
    thinking_settings,
)
from services.context import AppContext
from services.models.remote import estimate_note
from services.prompt_report import META_KEY as PROMPT_META
from services.prompt_report import Outline, record, span_words
from services.run_stream import STREAM_INTERVAL, run_texts
from store.errors import InvalidInputError, StoreError
from store.records import Message

ReplyMode = Literal["reply", "swipe", "continue", "impersonate"]


@dataclass(frozen=True)
class PreparedPrompt:
    fitted: FittedPrompt
    request: GenerationRequest
    anchor_seq: int  # seq of the first message kept: the next turn starts there while it fits
    lore: list[str]  # names of the lorebook entries that fired, for the UI
    outline: Outline  # what the prompt is made of, for the prompt inspector


def build_prompt(ctx: AppContext, view: ChatView, mode: ReplyMode = "reply") -> PreparedPrompt:
    """Fit the chat into the context for `mode`.

    Raises:
        StoreError: nothing to reply to; CannotContinueError: nothing to continue;
        ContextOverflowError, NoModelLoadedError.
    """
    session = ctx.store.sessions.get(view.session_id)
    settings = settings_for(ctx, session)
    thinking = thinking_settings(session)
    fmt = active_format(ctx, settings.format_choice)
    thinks = model_thinks(ctx, fmt)
    fmt = chat_format(ctx.detected_format(), fmt, thinking, thinks)
    rewrite = ctx.format_rewrite(fmt, template_switches(thinking, thinks))
    messages = _recent_messages(ctx, view.session_id, ctx.models.backend.n_ctx)
    anchor_seq = _last_anchor(messages)
    if mode == "swipe" and messages and messages[-1].role == "assistant":
        messages = messages[:-1]  # the reply being replaced is not part of its own prompt
    chat = [m for m in messages if m.role in ("user", "assistant")]
    visible = [m for m in chat if not m.hidden]
    if not visible and mode in ("reply", "swipe"):
        raise InvalidInputError("Send a message first.")
    inputs = prompt_inputs(ctx, session, settings.system_prompt)
    sees, keep = ctx.models.backend.sees_images, thinking.mode == "keep"
    present = _present_pictures(ctx, session.id, chat) if sees else set()
    built = build_character_prompt(
        fmt,
        inputs.sheet,
        inputs.persona,
        [_line(m, keep_thinking=keep, pictures=sum(n in present for n in attached(m))) for m in chat],
        count_tokens=ctx.models.count_tokens,
        global_system=inputs.global_system,
        books=inputs.books,
        mode="reply" if mode == "swipe" else mode,
        lore_placement=inputs.lore_placement,
        pick_seed=session.id,
    )
    # Formats that fold the system prompt into the first user turn pin the first message.
    pinned = 1 if built.parts.head and fmt.system_placement == "first_user" and visible else 0
    body = visible[pinned:]
    anchor = None if anchor_seq is None else sum(1 for m in body if m.seq < anchor_seq)
    fitted = ctx.models.fit(built.parts, settings.params, anchor=anchor, rewrite=rewrite)
    budget = thinking.budget if thinks and thinking.mode != "off" else 0
    in_prompt = visible[:pinned] + body[fitted.start : len(built.parts.body)]
    images = _pictures(ctx, session.id, in_prompt, present, fitted.text) if sees else ()
    request = GenerationRequest(
        fitted.text,
        settings.params,
        built.stop,
        think_budget=budget,
        thinking_opened=prompt_opens_thinking(fitted.text),
        images=images,
    )
    kept = body[fitted.start].seq if fitted.start < len(body) else (body[-1].seq + 1 if body else 0)
    lore = [
        entry.entry.label for entry in (*built.lore.before_char, *built.lore.after_char, *built.lore.at_depth)
    ]
    return PreparedPrompt(fitted, request, kept, lore, _outline(fitted, built, in_prompt, pinned))


def _present_pictures(ctx: AppContext, session_id: str, chat: list[Message]) -> set[str]:
    """The chat's pictures still in its folder: those go into the prompt."""
    images = ctx.store.sessions.images
    return {name for message in chat for name in attached(message) if images.exists(session_id, name)}


def _line(message: Message, *, keep_thinking: bool, pictures: int = 0) -> ChatLine:
    """A message as the prompt sees it: a reply without its thinking, which a thinking
    model's template drops from earlier turns too (and which would fill the context),
    unless the chat keeps it; a message with pictures opens with a marker for each, for
    a model that can see them. Nobody's text may hold a marker of its own."""
    text = message.text.replace(IMAGE_MARKER, "")
    if message.role == "user":
        markers = IMAGE_MARKER * pictures
        return ChatLine("user", markers + ("\n" if markers and text else "") + text, message.hidden)
    return ChatLine("assistant", text if keep_thinking else answer_of(text), message.hidden)


def _pictures(
    ctx: AppContext, session_id: str, in_prompt: list[Message], present: set[str], prompt: str
) -> tuple[bytes, ...]:
    """The pictures of the messages in the prompt (of those `present`), in order: one for
    each marker.

    Raises:
        InvalidInputError: the prompt holds another marker (in a card or a system prompt).
    """
    names = [name for message in in_prompt for name in attached(message) if name in present]
    pictures = tuple(ctx.store.sessions.images.read(session_id, name) for name in names)
    if prompt.count(IMAGE_MARKER) != len(pictures):
        raise InvalidInputError(
            f"The prompt holds the text {IMAGE_MARKER}, which stands for a picture: "
            "take it out of the character card or the system prompt."
        )
    return pictures


def _outline(fitted: FittedPrompt, built: CharacterPrompt, in_prompt: list[Message], pinned: int) -> Outline:
    """How the inspector describes a chat prompt: the messages in it, and what was left out."""
    total = pinned + len(built.parts.body)
    numbers = span_words([m.seq + 1 for m in in_prompt])
    details = {"history": f"{len(in_prompt)} of {total} messages: {numbers}" if in_prompt else ""}
    dropped = []
    if fitted.start:
        dropped.append(f"{fitted.start} older message{'s' if fitted.start != 1 else ''}")
    examples = len(built.parts.optional)
    details["examples"] = f"{fitted.kept_optional} of {examples} blocks" if examples else ""
    if fitted.kept_optional < examples:
        dropped.append(f"{examples - fitted.kept_optional} of {examples} example dialogue blocks")
    dropped.extend(f"lore “{entry.entry.label}” (over the lore budget)" for entry in built.lore.dropped)
    return Outline(fitted, "chat", details, tuple(dropped))


def _recent_messages(ctx: AppContext, session_id: str, n_ctx: int) -> list[Message]:
    """The newest messages that could fit (each takes at least a token), plus the first.

    The first message stays so that formats which pin it into the head (Llama-2,
    Mistral, Gemma) pin the same one every turn, however long the chat grows.
    """
    recent = ctx.store.sessions.messages(session_id, last=n_ctx)
    if recent and recent[0].seq > 0:
        recent.insert(0, ctx.store.sessions.message(session_id, 0))
    return recent


def _last_anchor(messages: list[Message]) -> int | None:
    """Where the previous prompt started, as saved with the latest reply."""
    for message in reversed(messages):
        if message.role == "assistant" and "anchor" in message.meta:
            return int(message.meta["anchor"])
    return None


def start(ctx: AppContext, view: ChatView | None, owner: str, mode: ReplyMode = "reply") -> Run:
    """Start generating for `mode`; what it produces is saved when the run ends
    (impersonate saves nothing: its text goes to the message box)."""
    view = ensure_session(ctx, view)
    answers = ctx.store.sessions.count(view.session_id)  # the reply's place: after what it saw
    prepared = build_prompt(ctx, view, mode)
    run = ctx.models.start(prepared.request, owner)
    if mode != "impersonate":
        run.on_done(_saver(ctx, view.session_id, mode, prepared, answers))
    ctx.busy_chats.hold(view.session_id, run)  # after the saver: busy until the reply is in
    return run


def _saver(ctx: AppContext, session_id: str, mode: ReplyMode, prepared: PreparedPrompt, at: int) -> Any:
    model_name = ctx.models.info.name if ctx.models.info else ""
    n_ctx = ctx.models.backend.n_ctx

    def save(finished: Run) -> None:
        finish = finished.finish
        if finished.error is not None or finish is None:
            return
        meta: dict[str, Any] = {
            "model": model_name,
            "finish": finish.reason.value,
            "anchor": prepared.anchor_seq,
            "n_ctx": n_ctx,
            "prompt_tokens": finish.usage.prompt_tokens,
            "prompt_reused": finish.usage.prompt_reused,
            "completion_tokens": finish.usage.completion_tokens,
            "seconds": round(finish.seconds, 3),
            "lore": prepared.lore,
        }
        kept = as_kept(finished.text, finished.request.thinking_opened)
        meta.update(_thinking_meta(ctx, finished, kept))
        report = record(ctx.prompts, finished, prepared.outline)
        if report is not None:
            meta[PROMPT_META] = report.to_meta()
        if mode == "continue":
            if finished.text.rstrip():
                chat_actions.extend_last(ctx, session_id, finished.text.rstrip(), meta)
            return
        text = clean_reply(kept)
        if not text or text == THINK_OPEN:
            return
        if mode == "swipe":
            chat_actions.add_swipe(ctx, session_id, text, meta)
        else:
            _put_reply(ctx, session_id, Message("assistant", text, meta=meta), at)

    return save


def _thinking_meta(ctx: AppContext, finished: Run, kept: str) -> dict[str, Any]:
    """How long a thinking model thought, for the folded block's summary: its thinking's
    tokens, and the run's time shared out by tokens (the run keeps no per-token clock)."""
    thought = split_thinking(kept)
    if not thought.thinking or finished.finish is None:
        return {}
    tokens = ctx.models.count_tokens(thought.thinking)
    produced = max(finished.finish.usage.completion_tokens, tokens, 1)
    seconds = round(finished.finish.seconds * tokens / produced, 1)
    return {"thinking_tokens": tokens, "thinking_seconds": seconds}


def _put_reply(ctx: AppContext, session_id: str, reply: Message, at: int) -> None:
    """Append the reply; or, should a message have come in after the one it answers (see
    `services.chat.busy`), put it right after that one, where it belongs."""
    if ctx.store.sessions.count(session_id) <= at:
        ctx.store.sessions.append(session_id, reply)
    else:
        ctx.store.sessions.insert_message(session_id, at, reply)


def came_back_empty(run: Run, mode: ReplyMode) -> bool:
    """Whether a finished run produced nothing worth saving (and so nothing was saved)."""
    if run.finish is None or run.finish.reason is FinishReason.CANCELLED:
        return False
    text = run.text.rstrip() if mode == "continue" else clean_reply(run.text)
    return not text


async def stream(run: Run, interval: float = STREAM_INTERVAL) -> AsyncIterator[str]:
    """The reply as it grows, at most once per `interval`, ready to display.

    Ends as soon as the run does (after its callbacks have saved the result).
    """
    async for text in run_texts(run, interval):
        yield shown_reply(text, run.request.thinking_opened)


def shown_for(run: Run) -> Callable[[str], str]:
    """How the page shows `run`'s text as it grows (`shown_reply`, knowing its prompt)."""
    return lambda text: shown_reply(text, run.request.thinking_opened)


def shown_reply(text: str, opened: bool = False) -> str:
    """A reply's text as the page shows it: cleaned up, rendered inert, its thinking
    folded. `opened`: the prompt opened the thinking block (`GenerationRequest`)."""
    return message_html(clean_reply(text), opened=opened)


def context_status(ctx: AppContext, view: ChatView) -> str:
    """A one-line summary of how full the context is, from the latest reply's record."""
    if not ctx.models.loaded:
        return ctx.startup_error or "No model loaded."
    n_ctx = ctx.models.backend.n_ctx
    latest = ctx.store.sessions.messages(view.session_id, last=1)
    estimate = estimate_note(ctx.models.backend)
    if latest and latest[0].role == "assistant" and "prompt_tokens" in latest[0].meta:
        return _usage_line(latest[0].meta, n_ctx, estimate)
    try:
        prepared = build_prompt(ctx, view)
    except StoreError:
        return f"Context: 0 / {n_ctx} tokens"
    except ContextOverflowError as exc:
        return f"Context: full. {exc}"
    fitted = prepared.fitted
    dropped = f" · {fitted.dropped} older messages left out" if fitted.dropped else ""
    return f"Context: {fitted.n_tokens} / {n_ctx} tokens{estimate}{dropped}"


def _usage_line(meta: dict[str, Any], n_ctx: int, estimate: str) -> str:
    used = int(meta["prompt_tokens"]) + int(meta.get("completion_tokens", 0))
    reused = int(meta.get("prompt_reused", 0))
    seconds = float(meta.get("seconds", 0.0))
    parts = [f"Context: {used} / {n_ctx} tokens{estimate}", f"prompt {int(meta['prompt_tokens'])}"]
    if reused:
        parts.append(f"{reused} reused from cache")
    if seconds > 0:
        parts.append(f"{int(meta.get('completion_tokens', 0)) / seconds:.1f} tokens/s")
    lore = meta.get("lore") or []
    if lore:
        parts.append("lore: " + ", ".join(str(name) for name in lore[:5]))
    return " · ".join(parts) + _finish_note(FinishReason(meta.get("finish", "stop")))


def _finish_note(reason: FinishReason) -> str:
    return {
        FinishReason.LENGTH: " · stopped at max new tokens",
        FinishReason.CANCELLED: " · stopped",
        FinishReason.ERROR: " · failed",
    }.get(reason, "")
