"""A chat bubble's frame: who speaks, above the message, and what can be done with it, below.

Gradio's Chatbot has one avatar per role and no per-message name, so each bubble carries
its own: a name line with the speaker's picture (the card's avatar, the persona's), or
their initial on a coloured disc. Below the message is a row of actions: edit, copy,
hide, branch, delete, and on the latest reply the swipe arrows.

All of it is one line of HTML around the message's own (`message_html`: what a
thinking model thought, folded, then the answer, each through `services.render.inert_html`),
so Gradio's Markdown pass keeps it as it is. Names are escaped here; Gradio's sanitizer
stays on behind it. That sanitizer drops `data-` attributes but keeps classes, so an
action names itself and its message in its classes (`hearth-act act-delete seq-4`); the
page's script (`ui/page.py`) turns a click on one into an event.
"""

from __future__ import annotations

import html
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from engine.prompts import split_thinking
from services.live import marker
from services.render import inert_html
from store.records import Message

IMAGES_KEY = "images"  # a message's `meta` key for the names of its pictures (`store.chats.images`)
HUES = 6  # the placeholder discs' colours (`.hearth-hue-N` in ui/page.py)
ACTIONS = (("edit", "Edit"), ("copy", "Copy"), ("hide", "Hide"), ("branch", "Branch"), ("delete", "Delete"))


@dataclass(frozen=True)
class Speaker:
    name: str
    picture: Path | None = None  # an avatar under the data folder, which the page may show


def picture_url(path: Path) -> str | None:
    """Where the page finds an avatar: Gradio's file route (which serves only avatars from
    the data folder). The file's time goes in the query, so a new picture shows at once."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    return f"gradio_api/file={quote(str(path))}?v={stamp}"


def head(speaker: Speaker) -> str:
    """The name line: the speaker's picture, or initial, then their name."""
    url = picture_url(speaker.picture) if speaker.picture is not None else None
    if url is not None:
        picture = f'<img class="hearth-avatar" src="{html.escape(url)}" alt="">'
    else:
        initial = next((c for c in speaker.name if c.isalnum()), "?").upper()
        hue = zlib.crc32(speaker.name.encode()) % HUES
        picture = f'<span class="hearth-avatar hearth-initial hearth-hue-{hue}">{html.escape(initial)}</span>'
    name = f'<span class="hearth-name">{html.escape(speaker.name)}</span>'
    return f'<div class="hearth-who">{picture}{name}</div>'


def message_html(
    text: str, meta: Mapping[str, Any] | None = None, note: str = "", *, opened: bool = False
) -> str:
    """A message's text as the bubble shows it: a thinking model's reasoning folded into a
    block above the answer (open while the model still thinks), then the answer, after
    `note` (Markdown). `meta` is the saved reply's, which says how long it thought (None
    for a reply still being written); `opened`, that the prompt opened the block."""
    thought = split_thinking(text, opened)
    if not thought.thought:
        return inert_html(note + text)
    if meta is None and not thought.closed:  # being written, still thinking
        summary, unfolded = "Thinking…", " open"
    elif not thought.closed:  # saved so: stopped, or out of tokens, mid-thought
        summary, unfolded = "Thought (cut off)", ""
    else:
        summary, unfolded = _thought_summary(meta or {}), ""
    block = (
        f'<details class="hearth-think"{unfolded}><summary>{html.escape(summary)}</summary>'
        f'<div class="hearth-thinking">{inert_html(thought.thinking)}</div></details>'
    )
    return block + inert_html(note + thought.answer)


def _thought_summary(meta: Mapping[str, Any]) -> str:
    """The block's title once the model has answered, as in "Thought for 12 s · 340
    tokens", from what was saved with the reply."""
    words = ["Thought"]
    seconds = meta.get("thinking_seconds")
    if isinstance(seconds, (int, float)) and seconds > 0:
        words.append(f"for {seconds:.0f} s" if seconds >= 10 else f"for {seconds:.1f} s")
    tokens = meta.get("thinking_tokens")
    if isinstance(tokens, int) and tokens > 0:
        words.append(f"· {tokens} token{'s' if tokens != 1 else ''}")
    return " ".join(words)


def pictures_html(uris: list[str]) -> str:
    """The pictures attached to a message, above its text (`data:` URIs Hearth made)."""
    if not uris:
        return ""
    images = "".join(
        f'<img class="hearth-picture" src="{html.escape(uri)}" alt="Attached picture">'
        for uri in uris
        if uri.startswith("data:image/png;base64,")
    )
    return f'<div class="hearth-pictures">{images}</div>'


def bubble(message: Message, speaker: Speaker, body: str, swipes: tuple[int, int] | None = None) -> str:
    """A stored message: name line, `body` (its HTML), then its actions.

    `swipes` is (shown, count) for the latest reply, which gets the swipe arrows.
    """
    actions = [
        _action(name, message.seq, "Unhide" if name == "hide" and message.hidden else label)
        for name, label in ACTIONS
    ]
    if swipes is not None:
        shown, count = swipes
        left = _action("swipe-left", message.seq, "‹", "Previous version")
        right = _action("swipe-right", message.seq, "›", "Next version, or a new one")
        where = f'<span class="hearth-swipes">{shown}/{count}</span>'
        actions.append(f'<span class="hearth-swipe">{left}{where}{right}</span>')
    row = f'<div class="hearth-acts">{"".join(actions)}</div>'
    return f'{head(speaker)}<div class="hearth-text">{body}</div>{row}'


class LiveFrame(Protocol):
    def __call__(self, body: str, token: str = "") -> str: ...


def live(speaker: Speaker) -> LiveFrame:
    """Frames the reply being written: its name line (made once), then the text so far;
    no actions until it is saved. Given a token (`services.live`), the page follows the
    reply into the text."""
    top = head(speaker)

    def frame(body: str, token: str = "") -> str:
        if token:
            return top + marker(token, body, tag="div", classes="hearth-text")
        return f'{top}<div class="hearth-text">{body}</div>'

    return frame


def _action(name: str, seq: int, label: str, title: str = "") -> str:
    hint = f' title="{html.escape(title)}"' if title else ""
    classes = f"hearth-act act-{name} seq-{seq}"
    return f'<span class="{classes}" role="button" tabindex="0"{hint}>{html.escape(label)}</span>'
