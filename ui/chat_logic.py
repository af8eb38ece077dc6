"""What the Chat tab does, as plain functions of typed values (no widgets here).

`ui/chat.py` lays out the widgets and wires them to these functions; tests call them
directly with a fake backend. Per-user state is a `ChatView`, kept in `gr.State`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from engine import (
    ContextOverflowError,
    FinishReason,
    FittedPrompt,
    GenerationRequest,
    Run,
    Turn,
    chat_parts,
    clean_reply,
)
from presets import DEFAULT_PRESET, PromptFormat, SamplerError, SamplerParams, SamplerPreset, Speakers
from store import DEFAULT_TITLE, Message, Session, StoreError
from ui.context import AppContext
from ui.render import inert_markdown

WINDOW = 40  # messages shown at once; older ones load on request
AUTO_FORMAT = "auto"
STREAM_INTERVAL = 0.25  # seconds between UI updates while a reply streams
SPEAKERS = Speakers(user="User", char="Assistant")


@dataclass(frozen=True)
class ChatView:
    """One browser tab's view of the chat tab."""

    session_id: str = ""
    window: int = WINDOW


@dataclass(frozen=True)
class ChatSettings:
    """The prompt and sampler settings a chat uses, as the widgets hold them."""

    system_prompt: str = ""
    format_choice: str = AUTO_FORMAT
    preset: str = DEFAULT_PRESET
    params: SamplerParams = SamplerParams()


# -- sessions ----------------------------------------------------------------------


def ensure_session(ctx: AppContext, view: ChatView | None) -> ChatView:
    """The view's chat, or the most recent one, or a new one."""
    view = view or ChatView()
    if view.session_id:
        try:
            ctx.store.sessions.get(view.session_id)
            return view
        except StoreError:
            pass
    recent = ctx.store.sessions.list_sessions()
    if recent:
        return ChatView(session_id=recent[0].id)
    return new_chat(ctx)


def new_chat(ctx: AppContext, settings: ChatSettings | None = None) -> ChatView:
    settings = settings or settings_for(ctx, None)
    session = ctx.store.sessions.create(
        format_id="" if settings.format_choice == AUTO_FORMAT else settings.format_choice,
        sampler={"preset": settings.preset, "params": settings.params.to_dict()},
        system_prompt=settings.system_prompt,
    )
    return ChatView(session_id=session.id)


def session_choices(ctx: AppContext) -> list[tuple[str, str]]:
    """(label, id) for every chat, most recent first."""
    return [(_label(s), s.id) for s in ctx.store.sessions.list_sessions()]


def _label(session: Session) -> str:
    stamp = time.strftime("%b %d %H:%M", time.localtime(session.updated))
    return f"{session.title} · {stamp}"


def settings_for(ctx: AppContext, session: Session | None) -> ChatSettings:
    """The settings stored with a chat, falling back to the defaults."""
    presets = ctx.presets()
    default = presets[DEFAULT_PRESET].params
    if session is None:
        return ChatSettings(params=default)
    sampler = session.sampler or {}
    stored = str(sampler.get("preset", ""))
    preset = stored if stored in presets else DEFAULT_PRESET
    try:
        params = SamplerParams.from_mapping(sampler.get("params", {}), base=presets[preset].params)
    except SamplerError:
        params = presets[preset].params
    fmt = session.format_id if session.format_id in ctx.formats else AUTO_FORMAT
    return ChatSettings(session.system_prompt, fmt, preset, params)


def find_preset(ctx: AppContext, name: str) -> SamplerPreset:
    """Raises SamplerError if there is no preset with that name."""
    presets = ctx.presets()
    if name not in presets:
        raise SamplerError(f"There is no sampler preset called {name!r}.")
    return presets[name]


def save_settings(ctx: AppContext, view: ChatView, settings: ChatSettings) -> Session:
    session = ctx.store.sessions.get(view.session_id)
    updated = replace(
        session,
        system_prompt=settings.system_prompt,
        format_id="" if settings.format_choice == AUTO_FORMAT else settings.format_choice,
        sampler={"preset": settings.preset, "params": settings.params.to_dict()},
    )
    return ctx.store.sessions.save(updated)


def rename(ctx: AppContext, view: ChatView, title: str) -> None:
    ctx.store.sessions.rename(view.session_id, title)


def delete(ctx: AppContext, view: ChatView) -> ChatView:
    """Delete the chat; the view moves to the most recent remaining one."""
    ctx.store.sessions.delete(view.session_id)
    return ensure_session(ctx, None)


# -- what the chatbot shows ----------------------------------------------------------


def visible_history(ctx: AppContext, view: ChatView) -> tuple[list[dict[str, Any]], int]:
    """The newest `view.window` messages for the Chatbot, and how many are hidden above."""
    total = ctx.store.sessions.count(view.session_id)
    messages = ctx.store.sessions.messages(view.session_id, last=view.window)
    shown = [{"role": m.role, "content": inert_markdown(m.text)} for m in messages if m.role != "system"]
    return shown, max(0, total - view.window)


def active_format(ctx: AppContext, choice: str) -> PromptFormat:
    """The chat's chosen format, or the one detected for the loaded model."""
    if choice != AUTO_FORMAT and choice in ctx.formats:
        return ctx.formats[choice]
    return ctx.detected_format().format


def format_choices(ctx: AppContext) -> list[tuple[str, str]]:
    detected = ctx.detected_format()
    auto = f"Auto: {detected.format.name} ({detected.reason})"
    return [(auto, AUTO_FORMAT)] + [(f.name, f.id) for f in ctx.formats.values()]


# -- sending and replying --------------------------------------------------------------


def send(ctx: AppContext, view: ChatView | None, text: str, settings: ChatSettings) -> ChatView:
    """Store the user's message (and the settings it was sent with)."""
    text = text.strip()
    if not text:
        raise StoreError("Type a message first.")
    view = ensure_session(ctx, view)
    session = save_settings(ctx, view, settings)
    ctx.store.sessions.append(view.session_id, Message("user", text))
    if session.title == DEFAULT_TITLE:
        ctx.store.sessions.rename(view.session_id, _title_from(text))
    return view


def _title_from(text: str) -> str:
    first_line = text.strip().splitlines()[0]
    return first_line if len(first_line) <= 48 else first_line[:47].rstrip() + "…"


def prepare_regenerate(ctx: AppContext, view: ChatView | None) -> ChatView:
    """Drop the last reply so a new one can be generated in its place."""
    view = ensure_session(ctx, view)
    sessions = ctx.store.sessions
    count = sessions.count(view.session_id)
    if count == 0:
        raise StoreError("There is nothing to regenerate yet: send a message first.")
    last = sessions.message(view.session_id, count - 1)
    if last.role == "assistant":
        sessions.truncate(view.session_id, count - 1)
    return view


def build_prompt(ctx: AppContext, view: ChatView) -> tuple[FittedPrompt, GenerationRequest, int]:
    """Fit the chat into the context. Returns the prompt, the request, and the seq of
    the first message kept (saved with the reply as the next turn's anchor)."""
    session = ctx.store.sessions.get(view.session_id)
    settings = settings_for(ctx, session)
    fmt = active_format(ctx, settings.format_choice)
    # No more messages than the context has tokens can ever fit, so read no more.
    backend = ctx.models.backend
    messages = ctx.store.sessions.messages(view.session_id, last=backend.n_ctx)
    anchor_seq = _last_anchor(messages)
    messages = [m for m in messages if not m.hidden and m.role in ("user", "assistant")]
    if not messages:
        raise StoreError("Send a message first.")
    first_seq = messages[0].seq
    turns = [Turn("user" if m.role == "user" else "assistant", m.text) for m in messages]
    parts = chat_parts(fmt, settings.system_prompt, turns, SPEAKERS)
    anchor = None if anchor_seq is None else max(0, anchor_seq - first_seq)
    fitted = ctx.models.fit(parts, settings.params, anchor=anchor)
    request = GenerationRequest(fitted.text, settings.params, fmt.stop_strings(SPEAKERS))
    return fitted, request, first_seq + fitted.start


def _last_anchor(messages: list[Message]) -> int | None:
    """Where the previous prompt started, as saved with the latest reply."""
    for message in reversed(messages):
        if message.role == "assistant" and "anchor" in message.meta:
            return int(message.meta["anchor"])
    return None


def start_reply(ctx: AppContext, view: ChatView | None, owner: str) -> tuple[Run, FittedPrompt]:
    """Start generating the assistant's reply; it is saved when the run ends."""
    view = ensure_session(ctx, view)
    fitted, request, anchor_seq = build_prompt(ctx, view)
    run = ctx.models.start(request, owner)
    session_id = view.session_id
    model_name = ctx.models.info.name if ctx.models.info else ""

    def persist(finished: Run) -> None:
        text = clean_reply(finished.text)
        if not text or finished.error is not None or finished.finish is None:
            return
        finish = finished.finish
        meta: dict[str, Any] = {
            "model": model_name,
            "finish": finish.reason.value,
            "anchor": anchor_seq,
            "n_ctx": ctx.models.backend.n_ctx,
            "prompt_tokens": finish.usage.prompt_tokens,
            "prompt_reused": finish.usage.prompt_reused,
            "completion_tokens": finish.usage.completion_tokens,
            "seconds": round(finish.seconds, 3),
        }
        ctx.store.sessions.append(session_id, Message("assistant", text, meta=meta))

    run.on_done(persist)
    return run, fitted


async def stream_reply(run: Run, interval: float = STREAM_INTERVAL) -> AsyncIterator[str]:
    """The reply as it grows, at most once per `interval`, ready to display.

    Ends as soon as the run does (after its callbacks have saved the reply).
    """
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()

    def wake(_run: Run) -> None:
        loop.call_soon_threadsafe(finished.set)

    run.on_done(wake)
    shown = ""
    while not finished.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), timeout=interval)
        if run.text != shown:
            shown = run.text
            yield inert_markdown(clean_reply(shown))


def context_status(ctx: AppContext, view: ChatView) -> str:
    """A one-line summary of how full the context is, from the latest reply's record."""
    if not ctx.models.loaded:
        return ctx.startup_error or "No model loaded."
    n_ctx = ctx.models.backend.n_ctx
    latest = ctx.store.sessions.messages(view.session_id, last=1)
    if latest and latest[0].role == "assistant" and "prompt_tokens" in latest[0].meta:
        return _usage_line(latest[0].meta, n_ctx)
    try:
        fitted, _, _ = build_prompt(ctx, view)
    except StoreError:
        return f"Context: 0 / {n_ctx} tokens"
    except ContextOverflowError as exc:
        return f"Context: full. {exc}"
    dropped = f" · {fitted.dropped} older messages left out" if fitted.dropped else ""
    return f"Context: {fitted.n_tokens} / {n_ctx} tokens{dropped}"


def _usage_line(meta: dict[str, Any], n_ctx: int) -> str:
    used = int(meta["prompt_tokens"]) + int(meta.get("completion_tokens", 0))
    reused = int(meta.get("prompt_reused", 0))
    seconds = float(meta.get("seconds", 0.0))
    parts = [f"Context: {used} / {n_ctx} tokens"]
    if reused:
        parts.append(f"{reused} reused from cache")
    if seconds > 0:
        parts.append(f"{int(meta.get('completion_tokens', 0)) / seconds:.1f} tokens/s")
    note = _finish_note(FinishReason(meta.get("finish", "stop")))
    return " · ".join(parts) + note


def _finish_note(reason: FinishReason) -> str:
    return {
        FinishReason.LENGTH: " · stopped at max new tokens",
        FinishReason.CANCELLED: " · stopped",
        FinishReason.ERROR: " · failed",
    }.get(reason, "")
