"""What the Chat tab does, as plain functions of typed values (no widgets here).

`ui/chat/tab.py` lays out the widgets and wires them to these functions; tests call them
directly with a fake backend. Per-user state is a `ChatView`, kept in `gr.State`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from presets.errors import SamplerError
from presets.formats import PromptFormat
from presets.samplers import DEFAULT_PRESET, SamplerParams, SamplerPreset
from services.chat.characters import start_character_chat
from services.context import AppContext
from services.render import inert_html
from store.chats import DEFAULT_TITLE
from store.errors import StoreError
from store.records import Message, Session

WINDOW = 40  # messages shown at once; older ones load on request
AUTO_FORMAT = "auto"


@dataclass(frozen=True)
class ChatView:
    """One browser tab's view of the chat tab.

    `shown` lists the seq of each message the history Chatbot displays, in order, so a
    click on the Nth bubble finds its message; `selected` is the clicked one.
    """

    session_id: str = ""
    window: int = WINDOW
    character_id: str | None = None
    shown: tuple[int, ...] = ()
    selected: int | None = None


@dataclass(frozen=True)
class ChatSettings:
    """The prompt and sampler settings a chat uses, as the widgets hold them."""

    system_prompt: str = ""
    format_choice: str = AUTO_FORMAT
    preset: str = DEFAULT_PRESET
    params: SamplerParams = SamplerParams()

    def with_params(self, params: SamplerParams) -> ChatSettings:
        return replace(self, params=params)


# -- sessions ----------------------------------------------------------------------


def ensure_session(ctx: AppContext, view: ChatView | None) -> ChatView:
    """The view's chat, or the character's most recent one, or a new one."""
    view = view or ChatView()
    if view.session_id:
        try:
            session = ctx.store.sessions.get(view.session_id)
            return replace(view, character_id=session.character_id)
        except StoreError:
            pass
    recent = chats_of(ctx, view.character_id)
    if recent:
        return ChatView(session_id=recent[0].id, character_id=view.character_id)
    return new_chat(ctx, character_id=view.character_id)


def open_chat(ctx: AppContext, session_id: str) -> ChatView:
    """The view of a chat picked from the list (its character comes with it)."""
    session = ctx.store.sessions.get(session_id)
    return ChatView(session_id=session.id, character_id=session.character_id)


def new_chat(
    ctx: AppContext, settings: ChatSettings | None = None, character_id: str | None = None
) -> ChatView:
    """A new chat with the character (or the assistant), opening with its greeting."""
    settings = settings or settings_for(ctx, None)
    session = start_character_chat(
        ctx,
        character_id,
        format_id="" if settings.format_choice == AUTO_FORMAT else settings.format_choice,
        sampler={"preset": settings.preset, "params": settings.params.to_dict()},
        system_prompt=settings.system_prompt,
    )
    return ChatView(session_id=session.id, character_id=character_id)


def chats_of(ctx: AppContext, character_id: str | None, query: str = "") -> list[Session]:
    """A character's chats (the assistant's when None), most recent first, filtered by title."""
    words = query.lower().split()
    return [
        s
        for s in ctx.store.sessions.list()
        if (s.character_id or None) == character_id and all(w in s.title.lower() for w in words)
    ]


def session_choices(ctx: AppContext, character_id: str | None = None) -> list[tuple[str, str]]:
    """(label, id) for the character's chats, most recent first."""
    return [(_label(s), s.id) for s in chats_of(ctx, character_id)]


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


def visible_history(ctx: AppContext, view: ChatView) -> tuple[list[dict[str, Any]], int, ChatView]:
    """The newest `view.window` messages for the Chatbot, how many are above them, and
    the view with `shown` updated. Messages hidden from the prompt are marked."""
    total = ctx.store.sessions.count(view.session_id)
    messages = [
        m for m in ctx.store.sessions.messages(view.session_id, last=view.window) if m.role != "system"
    ]
    shown = [{"role": m.role, "content": _bubble(m)} for m in messages]
    view = replace(view, shown=tuple(m.seq for m in messages))
    return shown, max(0, total - view.window), view


def _bubble(message: Message) -> str:
    note = "*(hidden from the prompt)*\n\n" if message.hidden else ""
    return inert_html(note + message.text)


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
