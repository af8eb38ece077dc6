"""Card macros: `{{user}}`, `{{char}}` and friends, expanded the way cards expect.

The rules come from the character card specs (V1/V2 legacy tags, V2 `{{original}}`,
V3 nickname and CBS macros) and from what SillyTavern actually does. Expansion runs
in a fixed order of passes, like SillyTavern's:

1. `{{original}}` and card-field macros (`{{description}}`, …), so the passes below
   also apply inside the text they bring in;
2. the legacy tags `<USER>`, `<BOT>`, `<CHAR>`, `<CHARIFNOTGROUP>`, `<GROUP>`;
3. `{{user}}`, `{{char}}`, `{{group}}`, `{{charIfNotGroup}}`;
4. `{{roll:…}}`; 5. `{{newline}}`, `{{noop}}`, then `{{trim}}`; 6. `{{reverse:…}}`;
7. comments: `{{// …}}`, `{{comment: …}}`, `{{hidden_key: …}}`;
8. `{{random:…}}`, then `{{pick:…}}`.

Each pass reads its input once and never re-reads what it inserted, so hostile text
cannot make expansion recurse, and the time stays linear in the text's length. A
macro in a pass's output is only expanded by a later pass (a name that contains
`{{random:…}}` is inserted as it is). Unknown macros are left untouched.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["MAX_EXPANDED_CHARS", "MacroContext", "expand_macros"]

# Card-field macros may not grow a text past this; the rest are left as they are.
MAX_EXPANDED_CHARS = 1_000_000
_MAX_DICE = 100
_MAX_SIDES = 1_000_000

_LEGACY = re.compile(r"<(user|bot|char|charifnotgroup|group)>", re.IGNORECASE)
_TRIM = re.compile(r"\{\{trim\}\}", re.IGNORECASE)
_ROLL = re.compile(r"roll[ :]\s*(.+)", re.IGNORECASE | re.DOTALL)
_DICE = re.compile(r"(\d{0,6})d(\d{1,9})\s*(?:([+-])\s*(\d{1,9}))?", re.IGNORECASE)
_CHOICE = re.compile(r"(random|pick)\s?::?(.+)", re.IGNORECASE | re.DOTALL)
_REVERSE = re.compile(r"reverse:(.+)", re.IGNORECASE | re.DOTALL)
_HIDDEN = re.compile(r"(?:comment|hidden_key)\s*:.*", re.IGNORECASE | re.DOTALL)

# Handles the body of one `{{…}}`: its replacement, or None to leave it untouched.
Handler = Callable[[str, int], "str | None"]


@dataclass(frozen=True)
class MacroContext:
    """What the macros stand for in one expansion.

    `original` is the text `{{original}}` stands for (the prompt a card's
    system_prompt or post_history_instructions replaces); None leaves it untouched.
    `fields` maps card-field macro names (`description`, `personality`, `scenario`,
    `persona`, `mesExamples`, …; any case) to their text. `rng` drives `{{random}}`
    and `{{roll}}`; `pick_seed` (a chat id, say) makes `{{pick}}` differ between chats
    while staying the same for the same text in the same chat.
    """

    user: str
    char: str
    char_nickname: str | None = None
    original: str | None = None
    group: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    rng: random.Random | None = field(default=None, compare=False)
    pick_seed: str = ""

    @property
    def char_display(self) -> str:
        """The name `{{char}}` becomes: the V3 nickname when set, else the name."""
        return self.char_nickname or self.char


def expand_macros(text: str, ctx: MacroContext) -> str:
    """Expand the card macros in `text` (see the module docstring for the order)."""
    if "{{" not in text and "<" not in text:
        return text
    rng = ctx.rng or random.Random()
    raw = text
    text = _substitute(text, _FieldPass(ctx))
    text = _LEGACY.sub(lambda m: _legacy(m.group(1), ctx), text)
    text = _substitute(text, lambda body, _at: _name(body, ctx))
    text = _substitute(text, lambda body, _at: _roll(body, rng))
    text = _substitute(text, _layout)
    text = _trim(text)
    text = _substitute(text, _reverse)
    text = _remove_comments(text)
    text = _substitute(text, lambda body, _at: _choice(body, "random", lambda: rng))
    seed = hashlib.sha256(f"{ctx.pick_seed}\x00{raw}".encode()).hexdigest()
    return _substitute(text, lambda body, at: _choice(body, "pick", lambda: _pick_rng(seed, at)))


def _substitute(text: str, handle: Handler) -> str:
    """Replace every innermost `{{…}}` whose body `handle` knows, in one left-to-right read."""
    out: list[str] = []
    pos = 0
    while (start := text.find("{{", pos)) >= 0:
        end = text.find("}}", start + 2)
        if end < 0:
            break
        inner = text.rfind("{{", start + 2, end)
        if inner >= 0:
            start = inner
        while text.startswith("{", start + 2) and start + 2 < end:
            start += 1  # `{{{user}}}`: the macro is the innermost pair of braces
        replacement = handle(text[start + 2 : end], start)
        out.append(text[pos:start])
        out.append(text[start : end + 2] if replacement is None else replacement)
        pos = end + 2
    out.append(text[pos:])
    return "".join(out)


class _FieldPass:
    """`{{original}}` (its first use only; later ones become empty) and card fields."""

    def __init__(self, ctx: MacroContext) -> None:
        self._original = ctx.original
        self._fields = {k.casefold(): v for k, v in ctx.fields.items()}
        self._added = 0

    def __call__(self, body: str, _at: int) -> str | None:
        key = body.casefold()
        if key == "original" and self._original is not None:
            original, self._original = self._original, ""
            return original
        value = self._fields.get(key)
        if value is None or self._added + len(value) > MAX_EXPANDED_CHARS:
            return None
        self._added += len(value)
        return value


def _legacy(tag: str, ctx: MacroContext) -> str:
    tag = tag.casefold()
    if tag == "user":
        return ctx.user
    if tag in ("bot", "char"):
        return ctx.char_display
    return ctx.group if ctx.group is not None else ctx.char_display


def _name(body: str, ctx: MacroContext) -> str | None:
    key = body.casefold()
    if key == "user":
        return ctx.user
    if key == "char":
        return ctx.char_display
    if key in ("group", "charifnotgroup"):
        return ctx.group if ctx.group is not None else ctx.char_display
    return None


def _roll(body: str, rng: random.Random) -> str | None:
    match = _ROLL.fullmatch(body)
    if match is None:
        return None
    formula = match.group(1).strip()
    if formula.isdigit():
        formula = f"1d{formula}"
    dice = _DICE.fullmatch(formula)
    if dice is None:
        return ""  # SillyTavern writes nothing for a formula it cannot roll
    count = int(dice.group(1) or "1")
    sides = int(dice.group(2))
    if not 1 <= count <= _MAX_DICE or not 1 <= sides <= _MAX_SIDES:
        return ""
    total = sum(rng.randint(1, sides) for _ in range(count))
    if dice.group(3):
        modifier = min(int(dice.group(4)), _MAX_SIDES)
        total += modifier if dice.group(3) == "+" else -modifier
    return str(total)


def _layout(body: str, _at: int) -> str | None:
    key = body.casefold()
    if key == "newline":
        return "\n"
    if key == "noop":
        return ""
    return None


def _trim(text: str) -> str:
    """`{{trim}}` disappears together with the line breaks on both sides of it."""
    parts = _TRIM.split(text)
    if len(parts) == 1:
        return text
    kept: list[str] = []
    for index, part in enumerate(parts):
        if index > 0:
            part = part.lstrip("\r\n")
        if index < len(parts) - 1:
            part = part.rstrip("\r\n")
        kept.append(part)
    return "".join(kept)


def _reverse(body: str, _at: int) -> str | None:
    match = _REVERSE.fullmatch(body)
    return match.group(1)[::-1] if match else None


def _remove_comments(text: str) -> str:
    """Remove `{{// …}}` (up to the first `}}`, as SillyTavern does) and V3 comment macros."""
    out: list[str] = []
    pos = 0
    while (start := text.find("{{//", pos)) >= 0:
        end = text.find("}}", start + 4)
        if end < 0:
            break
        out.append(text[pos:start])
        pos = end + 2
    out.append(text[pos:])
    return _substitute("".join(out), lambda body, _at: "" if _HIDDEN.fullmatch(body) else None)


def _choice(body: str, kind: str, make_rng: Callable[[], random.Random]) -> str | None:
    match = _CHOICE.fullmatch(body)
    if match is None or match.group(1).casefold() != kind:
        return None
    options = _options(match.group(2))
    return options[int(make_rng().random() * len(options))]


def _options(listing: str) -> list[str]:
    """`a::b` splits as written; `a, b` splits on commas (`\\,` escapes one) and trims."""
    if "::" in listing:
        return listing.split("::")
    placeholder = "\x00"
    parts = listing.replace(placeholder, "").replace("\\,", placeholder).split(",")
    return [part.strip().replace(placeholder, ",") for part in parts]


def _pick_rng(seed: str, offset: int) -> random.Random:
    """The same text at the same place with the same seed always picks the same option."""
    digest = hashlib.sha256(f"{seed}\x00{offset}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
