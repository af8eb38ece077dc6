"""Message-level chat actions, as plain functions: swipes, edit, delete, hide, branch.

Swipes follow SillyTavern: a reply keeps every version it has had (`Message.swipes`),
only the selected one (`swipe_index`, mirrored in `text`) enters the prompt, and
swiping right past the newest version asks for a new one. A character's greeting and
its alternate greetings are the swipes of message 0.
"""

from __future__ import annotations

from dataclasses import replace

from services.chat.pictures import attached
from services.context import AppContext
from store.errors import InvalidInputError, NotFoundError, StoreError
from store.records import Message, Session


def last_message(ctx: AppContext, session_id: str) -> Message | None:
    found = ctx.store.sessions.messages(session_id, last=1)
    return found[0] if found else None


def swipe_versions(message: Message) -> list[str]:
    """Every version of a message, the selected one included."""
    return list(message.swipes) or [message.text]


def swipe(ctx: AppContext, session_id: str, step: int) -> bool:
    """Show the previous (-1) or next (+1) version of the latest reply.

    Returns True when the caller should generate a new version instead (swiping right
    from the newest one).

    Raises:
        StoreError: the chat does not end with a reply.
    """
    last = last_message(ctx, session_id)
    if last is None or last.role != "assistant":
        raise InvalidInputError("Only the latest reply can be swiped, and this chat does not end with one.")
    versions = swipe_versions(last)
    index = last.swipe_index + step
    if index >= len(versions):
        return True
    index = max(0, index)
    chosen = replace(last, text=versions[index], swipe_index=index, swipes=tuple(versions))
    ctx.store.sessions.update_message(session_id, chosen)
    return False


def swipe_label(ctx: AppContext, session_id: str) -> str:
    """ "Reply 2 of 3" for the latest reply, or "" when it has only one version."""
    last = last_message(ctx, session_id)
    if last is None or last.role != "assistant" or len(last.swipes) < 2:
        return ""
    return f"Reply {last.swipe_index + 1} of {len(last.swipes)}"


def add_swipe(ctx: AppContext, session_id: str, text: str, meta: dict[str, object]) -> Message:
    """Add a new version to the latest reply and select it."""
    last = last_message(ctx, session_id)
    if last is None or last.role != "assistant":
        raise StoreError("The chat no longer ends with the reply that was being regenerated.")
    versions = [*swipe_versions(last), text]
    # The reply's own generation stats are replaced; what an import kept (its source app's
    # fields) stays, so exporting the chat again loses nothing.
    kept = {k: v for k, v in last.meta.items() if k in ("sillytavern", "textgen")}
    updated = replace(
        last, text=text, swipes=tuple(versions), swipe_index=len(versions) - 1, meta={**kept, **meta}
    )
    ctx.store.sessions.update_message(session_id, updated)
    return updated


def extend_last(ctx: AppContext, session_id: str, more: str, meta: dict[str, object]) -> Message:
    """Append continued text to the latest reply (its selected version)."""
    last = last_message(ctx, session_id)
    if last is None or last.role != "assistant":
        raise StoreError("The chat no longer ends with the reply that was being continued.")
    text = last.text + more
    versions = swipe_versions(last)
    versions[last.swipe_index if last.swipes else 0] = text
    swipes = tuple(versions) if last.swipes else ()
    updated = replace(last, text=text, swipes=swipes, meta={**last.meta, **meta})
    ctx.store.sessions.update_message(session_id, updated)
    return updated


def edit_message(ctx: AppContext, session_id: str, seq: int, text: str) -> None:
    """Replace a message's text (the selected version, for a reply with swipes)."""
    if not text.strip():
        raise InvalidInputError("A message cannot be empty; delete it instead.")
    message = ctx.store.sessions.message(session_id, seq)
    versions = list(message.swipes)
    if versions:
        versions[message.swipe_index] = text
    ctx.store.sessions.update_message(session_id, replace(message, text=text, swipes=tuple(versions)))


def delete_message(ctx: AppContext, session_id: str, seq: int) -> Message:
    """Delete a message; returns it, for `restore_message` (Undo)."""
    message = ctx.store.sessions.message(session_id, seq)
    ctx.store.sessions.delete_message(session_id, seq)
    return message


def restore_message(ctx: AppContext, session_id: str, message: Message) -> Message:
    """Put a deleted message back where it was (at the end, if the chat is shorter now)."""
    at = min(message.seq, ctx.store.sessions.count(session_id))
    return ctx.store.sessions.insert_message(session_id, at, message)


def toggle_hidden(ctx: AppContext, session_id: str, seq: int) -> bool:
    """Hide a message from the prompt (it stays in the chat), or show it again. Returns the new state."""
    message = ctx.store.sessions.message(session_id, seq)
    ctx.store.sessions.update_message(session_id, replace(message, hidden=not message.hidden))
    return not message.hidden


def branch(ctx: AppContext, session_id: str, seq: int) -> Session:
    """A new chat holding this chat's messages up to and including `seq`."""
    original = ctx.store.sessions.get(session_id)
    total = ctx.store.sessions.count(session_id)
    if not 0 <= seq < total:
        raise NotFoundError(f"Message {seq} does not exist.")
    kept = ctx.store.sessions.messages(session_id)[: seq + 1]
    fresh = ctx.store.sessions.create(
        title=f"{original.title} (branch)"[:120],
        format_id=original.format_id,
        sampler=original.sampler,
        system_prompt=original.system_prompt,
        character_id=original.character_id,
    )
    extra = {**original.extra, "branched_from": {"session": session_id, "message": seq}}
    ctx.store.sessions.restore(replace(fresh, extra=extra), [replace(m, seq=-1) for m in kept])
    for name in {name for message in kept for name in attached(message)}:  # after: restore clears the folder
        if ctx.store.sessions.images.exists(session_id, name):
            ctx.store.sessions.images.copy(session_id, fresh.id, name)
    return ctx.store.sessions.get(fresh.id)
