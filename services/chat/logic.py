"""What the Chat tab does, as plain functions of typed values (no widgets here).

`ui/chat/tab.py` lays out the widgets and wires them to these functions; tests call them
directly with a fake backend. Per-user state is a `ChatView`, kept in `gr.State`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from catalog.bundled import BUNDLED_NAME, bundled_model_path
from catalog.errors import CatalogError
from engine.types import ModelInfo
from presets.errors import InputError, SamplerError
from presets.formats import PromptFormat
from presets.samplers import DEFAULT_PRESET, SamplerParams, SamplerPreset
from services.chat import bubbles
from services.chat.bubbles import IMAGES_KEY, Speaker
from services.chat.characters import ROLEPLAY_SYSTEM, speakers, start_character_chat
from services.chat.pictures import require_sight, thumbnails
from services.context import AppContext
from services.models.words import md
from store.chats import DEFAULT_TITLE
from store.errors import InvalidInputError, StoreError
from store.records import Message, Session

WINDOW = 40  # messages shown at once; older ones load on request
AUTO_FORMAT = "auto"


class ChatBusyError(StoreError, InputError):
    """A message came while the model is still writing in that chat (see `services.chat.busy`)."""


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
        system_prompt=_own_system_prompt(ctx, settings.system_prompt, character_id, settings.format_choice),
    )
    return ChatView(session_id=session.id, character_id=character_id)


def next_chat(ctx: AppContext, leaving: ChatSettings, character_id: str | None) -> ChatView:
    """New chat, pressed in a chat with `leaving` settings: the new one keeps a system prompt
    the user wrote, and starts on the automatic prompt format and the default sampler preset.
    A format picked for one model would otherwise defeat detection for the next."""
    own = _own_system_prompt(ctx, leaving.system_prompt, character_id, leaving.format_choice, AUTO_FORMAT)
    fresh = replace(settings_for(ctx, None), system_prompt=own)
    return new_chat(ctx, fresh, character_id=character_id)


def reopen(ctx: AppContext, view: ChatView | None, last_session_id: Any) -> ChatView:
    """The chat a page opens on: the one it shows, else the chat this browser was last in
    (`last_session_id`, as the browser remembers it), else as `ensure_session`."""
    if view is None and isinstance(last_session_id, str) and last_session_id:
        try:
            return open_chat(ctx, last_session_id)
        except StoreError:
            pass  # deleted since, or not an id at all
    return ensure_session(ctx, view)


def chats_of(ctx: AppContext, character_id: str | None, query: str = "") -> list[Session]:
    """A character's chats (the assistant's when None), most recent first, filtered by title."""
    words = query.lower().split()
    return [
        s
        for s in ctx.store.sessions.list()
        if (s.character_id or None) == character_id and all(w in s.title.lower() for w in words)
    ]


def session_choices(ctx: AppContext) -> list[tuple[str, str]]:
    """(label, id) for every chat, most recent first; a label names the chat's character,
    so typing a character's name in the list finds their chats."""
    names = {c.id: c.name for c in ctx.store.characters.list()}
    return [(_label(s, names), s.id) for s in ctx.store.sessions.list()]


def _label(session: Session, names: dict[str, str]) -> str:
    stamp = time.strftime("%b %d %H:%M", time.localtime(session.updated))
    who = names.get(session.character_id, "deleted character") if session.character_id else "Assistant"
    return f"{session.title} · {who} · {stamp}"


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
    """Store the chat's settings. A system prompt that is the default (under the format the
    chat had or has now) is stored as none, so it goes on following the model's format."""
    session = ctx.store.sessions.get(view.session_id)
    system = _own_system_prompt(
        ctx, settings.system_prompt, session.character_id, settings_for(ctx, session).format_choice,
        settings.format_choice,
    )  # fmt: skip
    updated = replace(
        session,
        system_prompt=system,
        format_id="" if settings.format_choice == AUTO_FORMAT else settings.format_choice,
        sampler={"preset": settings.preset, "params": settings.params.to_dict()},
    )
    return ctx.store.sessions.save(updated)


def default_system_prompt(ctx: AppContext, character_id: str | None, format_choice: str) -> str:
    """What is sent as the system prompt while a chat has none of its own: SillyTavern's
    roleplay line with a character, else the prompt format's primer."""
    if character_id:
        return ROLEPLAY_SYSTEM
    return active_format(ctx, format_choice).default_system


def system_prompt_shown(ctx: AppContext, session: Session) -> str:
    """The chat's system prompt as its box shows it: its own, else the default that is
    sent in its place, to start from."""
    choice = settings_for(ctx, session).format_choice
    return session.system_prompt or default_system_prompt(ctx, session.character_id, choice)


def _own_system_prompt(ctx: AppContext, text: str, character_id: str | None, *choices: str) -> str:
    """`text` as a chat stores it: '' when it is the default under any of the `choices`."""
    defaults = {default_system_prompt(ctx, character_id, choice).strip() for choice in choices}
    return "" if text.strip() in defaults else text


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
    user, them = speakers(ctx, ctx.store.sessions.get(view.session_id))
    shown = [
        {
            "role": m.role,
            "content": _bubble(ctx, view, m, user if m.role == "user" else them, m.seq == total - 1),
        }
        for m in messages
    ]
    view = replace(view, shown=tuple(m.seq for m in messages))
    return shown, max(0, total - view.window), view


def _bubble(ctx: AppContext, view: ChatView, message: Message, speaker: Speaker, latest: bool) -> str:
    """A message framed by its speaker's name and picture, and its actions; the latest
    reply gets the swipe arrows."""
    if message.role == "user" and message.name and message.name != speaker.name:
        speaker = Speaker(message.name)  # written as another persona (an imported chat)
    note = "*(hidden from the prompt)*\n\n" if message.hidden else ""
    swipes = (message.swipe_index + 1, max(1, len(message.swipes))) if latest else None
    body = bubbles.message_html(message.text, message.meta, note)
    body = bubbles.pictures_html(thumbnails(ctx, view.session_id, message)) + body
    return bubbles.bubble(message, speaker, body, swipes if message.role == "assistant" else None)


def reply_speaker(ctx: AppContext, view: ChatView) -> Speaker:
    """Who writes the chat's replies, for the bubble a reply streams into."""
    return speakers(ctx, ctx.store.sessions.get(view.session_id))[1]


def model_note(ctx: AppContext, bundled: Callable[[], Path] = bundled_model_path) -> str:
    """One line naming the loaded model; for the bundled one, that it is a tiny demo."""
    info = ctx.models.info if ctx.models.loaded else None
    if info is None:
        return "**No model is loaded.** " + (md(ctx.startup_error) or "Pick one in Models.")
    if _is_bundled(info, bundled):
        return (
            f"Model: **{BUNDLED_NAME}**, a tiny demo model: fine for a first try, too small for good chats."
        )
    return f"Model: **{md(info.name)}**" + (" (remote)" if info.remote else "")


def _is_bundled(info: ModelInfo, bundled: Callable[[], Path]) -> bool:
    path = Path(info.path)
    if info.remote or not path.is_file():
        return False
    try:
        return path.resolve() == bundled().resolve()
    except (CatalogError, OSError):
        return False


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


def send(
    ctx: AppContext, view: ChatView | None, text: str, settings: ChatSettings, images: Sequence[bytes] = ()
) -> ChatView:
    """Store the user's message, with the pictures attached to it (and the settings it
    was sent with).

    Raises:
        InvalidInputError: no text and no picture, a picture for a model that cannot see,
            or a file that is not a picture.
    """
    text = text.strip()
    if not text and not images:
        raise InvalidInputError("Type a message first.")
    if images:
        require_sight(ctx)
    view = ensure_session(ctx, view)
    if ctx.busy_chats.busy(view.session_id):
        raise ChatBusyError("Hearth is still writing in this chat: wait for the reply, or press Stop.")
    names = [ctx.store.sessions.images.add(view.session_id, image) for image in images]
    session = save_settings(ctx, view, settings)
    meta = {IMAGES_KEY: names} if names else {}
    ctx.store.sessions.append(view.session_id, Message("user", text, meta=meta))
    if session.title == DEFAULT_TITLE:
        ctx.store.sessions.rename(view.session_id, _title_from(text or "A picture"))
    return view


def _title_from(text: str) -> str:
    first_line = text.strip().splitlines()[0]
    return first_line if len(first_line) <= 48 else first_line[:47].rstrip() + "…"
