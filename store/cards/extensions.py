"""The card extension Hearth reads: SillyTavern's depth prompt, checked at import, read safely.

A card's `extensions` belong to the apps that wrote them. Hearth keeps every one of
them verbatim and reads one: `depth_prompt` (`{"prompt", "depth", "role"}`), the
character's note placed `depth` messages from the end of the chat. SillyTavern reads
its depth with `parseInt` and falls back to its defaults (depth 4, role system), so a
bad value there is not a reason to refuse a card: at import it is replaced with what
SillyTavern would use, and the card gets a note saying so. Reading never fails either,
so a card stored before that check still opens and replies.

Not read, so kept as they are: `talkativeness` (group chats), `fav`, `world`, and
whatever else an app writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from store.cards.decode import short
from store.cards.model import MAX_TEXT_CHARS
from store.errors import CardTooLargeError

DepthRole = Literal["system", "user", "assistant"]

DEPTH_PROMPT = "depth_prompt"
DEFAULT_DEPTH = 4
MAX_DEPTH = 9_999  # SillyTavern's field takes 0-9999
ROLES: tuple[DepthRole, ...] = ("system", "user", "assistant")
_LEADING_INTEGER = re.compile(r"\s*([+-]?)([0-9]+)")  # what JavaScript's parseInt reads
_MAX_DIGITS = 6  # more is past MAX_DEPTH; int() of thousands of digits is slow or refused


@dataclass(frozen=True)
class DepthPrompt:
    """The card's depth prompt as Hearth uses it."""

    text: str
    depth: int = DEFAULT_DEPTH
    role: DepthRole = "system"


def read_depth_prompt(extensions: Any) -> DepthPrompt | None:
    """The card's depth prompt, or None when it has none or its text is blank. Never raises."""
    raw = extensions.get(DEPTH_PROMPT) if isinstance(extensions, Mapping) else None
    fixed, _notes = _fixed_depth_prompt(raw)
    if fixed is None:
        return None
    text = fixed.get("prompt")
    if not isinstance(text, str) or not text.strip():
        return None
    depth, _note = _depth(fixed.get("depth"))
    role, _note = _role(fixed.get("role"))
    return DepthPrompt(text, depth, role)


def checked_extensions(extensions: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The card's extensions with the values Hearth reads made valid, and a note for each change.

    Values are changed only where they are wrong; every other key stays as it was.

    Raises:
        CardTooLargeError: the depth prompt's text is over `MAX_TEXT_CHARS`.
    """
    if extensions.get(DEPTH_PROMPT) is None:
        return extensions, []
    fixed, notes = _fixed_depth_prompt(extensions[DEPTH_PROMPT])
    text = fixed.get("prompt") if fixed is not None else None
    if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
        raise CardTooLargeError(
            f"data.extensions.depth_prompt.prompt is too long ({len(text):,} characters; "
            f"the limit is {MAX_TEXT_CHARS:,})"
        )
    out = dict(extensions)
    if fixed is None:
        del out[DEPTH_PROMPT]
    else:
        out[DEPTH_PROMPT] = fixed
    return out, notes


def _fixed_depth_prompt(raw: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """The depth prompt object with bad values replaced (None: there is none), and notes."""
    if raw is None:
        return None, []
    if not isinstance(raw, Mapping):
        return None, [f"The card's depth prompt {short(raw)} is not an object, so it was left out."]
    fixed, notes = dict(raw), []
    text = raw.get("prompt")
    if text is not None and not isinstance(text, str):
        fixed["prompt"] = ""
        notes.append(f"The card's depth prompt text {short(text)} is not text, so it was left out.")
    if raw.get("depth") is not None:
        fixed["depth"], note = _depth(raw["depth"])
        notes += note
    if raw.get("role") is not None:
        fixed["role"], note = _role(raw["role"])
        notes += note
    return fixed, notes


def _depth(raw: Any) -> tuple[int, list[str]]:
    """The depth SillyTavern would use for `raw`, and a note when that is not what it says."""
    if raw is None:
        return DEFAULT_DEPTH, []
    number, exact = _leading_integer(raw)
    if number is None:
        return DEFAULT_DEPTH, [
            f"The card's depth prompt depth {short(raw)} is not a number, so the default "
            f"{DEFAULT_DEPTH} is used."
        ]
    depth = min(MAX_DEPTH, max(0, number))
    if depth != number or not exact:
        return depth, [
            f"The card's depth prompt depth {short(raw)} is not a whole number from 0 to "
            f"{MAX_DEPTH:,}, so {depth} is used."
        ]
    return depth, []


def _leading_integer(raw: Any) -> tuple[int | None, bool]:
    """`parseInt(raw)`, and whether `raw` was exactly that integer (4, 4.0 or "4")."""
    if isinstance(raw, bool):
        return None, False
    if isinstance(raw, int):
        return raw, True
    if isinstance(raw, float):
        if raw != raw or raw in (float("inf"), float("-inf")):
            return None, False
        return int(raw), raw.is_integer()
    if not isinstance(raw, str):
        return None, False
    match = _LEADING_INTEGER.match(raw)
    if match is None:
        return None, False
    sign, digits = match.groups()
    digits = digits.lstrip("0") or "0"
    magnitude = int(digits) if len(digits) <= _MAX_DIGITS else MAX_DEPTH + 1
    exact = len(digits) <= _MAX_DIGITS and not raw[match.end() :].strip()
    return (-magnitude if sign == "-" else magnitude), exact


def _role(raw: Any) -> tuple[DepthRole, list[str]]:
    """The role SillyTavern would use for `raw` (an unknown one is system), and a note."""
    if isinstance(raw, str):
        for role in ROLES:
            if raw.strip().lower() == role:
                return role, []
    elif isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(ROLES):
        return ROLES[raw], []  # SillyTavern's numbers for its roles
    return "system", [
        f"The card's depth prompt role {short(raw)} is not system, user or assistant, so system is used."
    ]
