"""Characters, personas and world books as the chat uses them (no widgets here).

A chat belongs to a character (`Session.character_id`; None is the plain assistant).
This module turns the stored card into the engine's `CharacterSheet`, the card's
`character_book` and the enabled world books into `Lorebook`s, and the chat's persona
(locked to the chat, else the default) into a `PersonaSheet`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from engine.lore import Lorebook
from engine.prompts import CharacterSheet, DepthNote, MacroContext, PersonaSheet, expand_macros
from services.chat.bubbles import Speaker
from services.context import AppContext
from store.cards import CharacterCard, card_dict, read_depth_prompt
from store.errors import InvalidInputError, NotFoundError
from store.personas import Persona
from store.records import Message, Session

LorePlacement = Literal["character", "recent"]
ASSISTANT = CharacterSheet(name="Assistant")
# SillyTavern's "Neutral - Chat" system prompt: used for characters when the user set none.
ROLEPLAY_SYSTEM = "Write {{char}}'s next reply in a fictional chat between {{char}} and {{user}}."


@dataclass(frozen=True)
class PromptInputs:
    sheet: CharacterSheet
    persona: PersonaSheet
    books: tuple[Lorebook, ...]
    global_system: str
    lore_placement: LorePlacement


def prompt_inputs(ctx: AppContext, session: Session, system_prompt: str) -> PromptInputs:
    """Everything about who is talking that goes into a chat's prompt."""
    persona = chat_persona(ctx, session)
    placement: LorePlacement = "recent" if session.extra.get("lore_placement") == "recent" else "character"
    if not session.character_id:
        return PromptInputs(ASSISTANT, _persona_sheet(persona), world_books(ctx), system_prompt, placement)
    card = ctx.store.characters.get(session.character_id).card
    books = (*character_books(card), *world_books(ctx))
    system = system_prompt or ROLEPLAY_SYSTEM
    return PromptInputs(sheet_from_card(card), _persona_sheet(persona), books, system, placement)


def sheet_from_card(card: CharacterCard) -> CharacterSheet:
    depth = read_depth_prompt(card.extensions)  # read as SillyTavern reads it; never fails
    note = None if depth is None else DepthNote(text=depth.text, depth=depth.depth, role=depth.role)
    return CharacterSheet(
        name=card.name,
        nickname=card.nickname or "",
        description=card.description,
        personality=card.personality,
        scenario=card.scenario,
        system_prompt=card.system_prompt,
        post_history_instructions=card.post_history_instructions,
        mes_example=card.mes_example,
        depth_prompt=note,
    )


def character_books(card: CharacterCard) -> tuple[Lorebook, ...]:
    """The card's own lorebook (a card's book takes precedence over world books)."""
    if card.character_book is None:
        return ()
    book = card_dict(card, "v3", now=None)["data"]["character_book"]
    return (Lorebook.from_dict(book, name=card.name),)


def world_books(ctx: AppContext) -> tuple[Lorebook, ...]:
    """The user's enabled world books."""
    books = []
    for stored in ctx.store.worlds.enabled_books():
        if stored.shape == "st_world_info":
            books.append(Lorebook.from_world_info(stored.book, name=stored.name))
        else:
            books.append(Lorebook.from_dict(stored.book, name=stored.name))
    return tuple(books)


# -- personas --------------------------------------------------------------------------------


def chat_persona(ctx: AppContext, session: Session | None) -> Persona:
    """The persona locked to the chat, else the default one."""
    locked = session.extra.get("persona_id") if session is not None else None
    return ctx.store.personas.resolve(locked if isinstance(locked, str) else None)


def _persona_sheet(persona: Persona) -> PersonaSheet:
    return PersonaSheet(name=persona.name, description=persona.description)


def speaker_names(ctx: AppContext, session: Session | None) -> tuple[str, str]:
    """(user, character) display names for a chat."""
    user = chat_persona(ctx, session).name
    if session is None or not session.character_id:
        return user, ASSISTANT.name
    card = ctx.store.characters.get(session.character_id).card
    return user, card.nickname or card.name


def speakers(ctx: AppContext, session: Session) -> tuple[Speaker, Speaker]:
    """(you, them) as the chat's bubbles show them: the persona and the character (or the
    assistant), each with their picture if they have one."""
    persona = chat_persona(ctx, session)
    user = Speaker(persona.name, ctx.store.personas.avatar_path(persona.id))
    if not session.character_id:
        return user, Speaker(ASSISTANT.name)
    try:
        stored = ctx.store.characters.get(session.character_id)
    except NotFoundError:
        return user, Speaker("Deleted character")
    return user, Speaker(stored.card.nickname or stored.card.name, stored.avatar_path)


# -- starting a chat with a character -----------------------------------------------------------


def greeting(card: CharacterCard, user: str) -> Message | None:
    """Message 0 of a new chat: the first message, with the alternate greetings as its swipes."""
    macros = MacroContext(user=user, char=card.name, char_nickname=card.nickname or None)
    texts = [expand_macros(t, macros) for t in [card.first_mes, *card.alternate_greetings] if t.strip()]
    if not texts:
        return None
    swipes = tuple(texts) if len(texts) > 1 else ()
    return Message("assistant", texts[0], swipes=swipes, swipe_index=0, name=card.nickname or card.name)


def start_character_chat(ctx: AppContext, character_id: str | None, **settings: Any) -> Session:
    """A new chat with a character (None: the plain assistant), opening with its greeting."""
    session = ctx.store.sessions.create(character_id=character_id, **settings)
    if character_id:
        stored = ctx.store.characters.get(character_id)
        user = ctx.store.personas.default().name
        opening = greeting(stored.card, user)
        title = f"Chat with {stored.card.name}"
        session = ctx.store.sessions.save(replace(session, title=title))
        if opening is not None:
            ctx.store.sessions.append(session.id, opening)
    return session


def lock_persona(ctx: AppContext, session_id: str, persona_id: str | None) -> Session:
    """Lock a persona to a chat (None unlocks it: the default persona speaks)."""
    session = ctx.store.sessions.get(session_id)
    before = chat_persona(ctx, session).name
    extra = dict(session.extra)
    if persona_id:
        ctx.store.personas.get(persona_id)  # raises NotFoundError for an unknown id
        extra["persona_id"] = persona_id
    else:
        extra.pop("persona_id", None)
    saved = ctx.store.sessions.save(replace(session, extra=extra))
    _greet_again(ctx, saved, before, chat_persona(ctx, saved).name)
    return saved


def _greet_again(ctx: AppContext, session: Session, before: str, now: str) -> None:
    """A chat that holds only its greeting, as written for `before`, gets it written for
    `now`: {{user}} in the greeting names whoever the chat's persona is. An edited
    greeting, or a chat already under way, is left alone."""
    if before == now or not session.character_id or ctx.store.sessions.count(session.id) != 1:
        return
    try:
        card = ctx.store.characters.get(session.character_id).card
    except NotFoundError:
        return  # the character was deleted; its chat stays as it is
    first = ctx.store.sessions.messages(session.id)[0]
    old, new = greeting(card, before), greeting(card, now)
    if old is None or new is None or (first.swipes or (first.text,)) != (old.swipes or (old.text,)):
        return
    texts = new.swipes or (new.text,)
    ctx.store.sessions.update_message(
        session.id, replace(first, text=texts[first.swipe_index], swipes=new.swipes)
    )


def set_lore_placement(ctx: AppContext, session_id: str, placement: str) -> Session:
    if placement not in ("character", "recent"):
        raise InvalidInputError("Lorebook placement must be 'character' or 'recent'.")
    session = ctx.store.sessions.get(session_id)
    return ctx.store.sessions.save(replace(session, extra={**session.extra, "lore_placement": placement}))
