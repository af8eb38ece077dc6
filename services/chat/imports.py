"""Bringing cards and chats in (a card that is already here, and whose chat a file is),
and what of a chat goes out in an export.

A card file imported twice would make two characters nobody can tell apart, so an
import first looks for the same card (same name, same card fields, same picture) and
opens it instead. Characters that do share a name get a number in the lists
(`character_labels`), the card itself keeps its name: the name is what the model sees.

A SillyTavern chat names its character in its header (`character_name`, the card's
nickname or name). `chat_owner` attaches the chat to the one character of that name,
and when none or several match, leaves the choice to the user.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, replace

from engine.prompts import answer_of
from services.chat.characters import ASSISTANT
from services.context import AppContext
from store.cards import CharacterCard, ImportedCard, card_to_record
from store.characters import CharacterSummary
from store.records import Message


@dataclass(frozen=True)
class CardImport:
    """The character an imported card file became; `existing` when it was already here."""

    character: CharacterSummary
    existing: bool


@dataclass(frozen=True)
class ChatOwner:
    """Whom an imported chat belongs to.

    `character_id` is where it goes now (None: the plain assistant). When the file names
    a character that no single character here matches, `note` says so and `candidates`
    are the characters to offer (the ones of that name, else everyone).
    """

    character_id: str | None
    note: str = ""
    candidates: tuple[CharacterSummary, ...] = ()


def import_character(ctx: AppContext, imported: ImportedCard) -> CardImport:
    """Store an imported card, unless the very same card is already stored: then that one."""
    same = same_card(ctx, imported)
    if same is not None:
        return CardImport(same, existing=True)
    return CardImport(ctx.store.characters.create(imported), existing=False)


def same_card(ctx: AppContext, imported: ImportedCard) -> CharacterSummary | None:
    """A stored character holding exactly this card and picture (an edited one no longer does)."""
    wanted = card_fingerprint(imported.card, imported.avatar_png)
    for summary in ctx.store.characters.list():
        if summary.name != imported.card.name:
            continue
        stored = ctx.store.characters.get(summary.id)
        if card_fingerprint(stored.card, stored.avatar_png()) == wanted:
            return summary
    return None


def card_fingerprint(card: CharacterCard, avatar_png: bytes | None) -> str:
    """A hash of the card as the store keeps it, and of its picture."""
    record = json.dumps(card_to_record(card), sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(record.encode("utf-8"))
    digest.update(b"\0" + (avatar_png or b""))
    return digest.hexdigest()


def character_labels(summaries: list[CharacterSummary]) -> dict[str, str]:
    """Each character's name for the lists, by id: characters sharing a name get "(2)",
    "(3)"… in the order they were added, so no two look the same."""
    counts = Counter(s.name for s in summaries)
    seen: Counter[str] = Counter()
    labels: dict[str, str] = {}
    for summary in sorted(summaries, key=lambda s: (s.created, s.id)):
        seen[summary.name] += 1
        number = seen[summary.name]
        shared = counts[summary.name] > 1 and number > 1
        labels[summary.id] = f"{summary.name} ({number})" if shared else summary.name
    return labels


def chat_owner(ctx: AppContext, named: str, selected: str | None) -> ChatOwner:
    """The character an imported chat goes to: the one its file names.

    Args:
        named: the character name in the file's header ("" when it names none).
        selected: the character open in the Chat tab (None: the plain assistant).
    """
    key = " ".join(named.split()).casefold()
    if not key:
        return ChatOwner(selected)  # the file does not say: the chat the user is in decides
    everyone = ctx.store.characters.list()
    matches = [s for s in everyone if key in {s.name.casefold().strip(), s.nickname.casefold().strip()}]
    ids = [s.id for s in matches]
    if selected in ids:
        return ChatOwner(selected)
    if len(matches) == 1:
        name = matches[0].name
        return ChatOwner(matches[0].id, f"The chat is with {name}, so it went into {name}'s chats.")
    if key == ASSISTANT.name.casefold():
        return ChatOwner(None)
    if matches:
        note = f"Several characters are named {named}; pick the one this chat belongs to."
        return ChatOwner(None, note, tuple(matches))
    note = (
        f"This chat is with {named}, and no character here has that name, so it was imported "
        f"without one. Attach it to a character, or import {named}'s card and then the chat again."
    )
    return ChatOwner(None, note, tuple(everyone))


def attach_chat(ctx: AppContext, session_id: str, character_id: str | None) -> None:
    """Move a chat to another character (None: the plain assistant)."""
    if character_id:
        ctx.store.characters.get(character_id)  # raises NotFoundError if it was deleted
    session = ctx.store.sessions.get(session_id)
    ctx.store.sessions.save(replace(session, character_id=character_id or None))


def for_export(messages: list[Message]) -> list[Message]:
    """The messages as an export writes them: replies (and their other versions) without
    what a thinking model thought, which is the app's to show, not the chat's text."""
    return [
        replace(m, text=answer_of(m.text), swipes=tuple(answer_of(t) for t in m.swipes))
        if m.role == "assistant"
        else m
        for m in messages
    ]
