"""Making user and model text safe to show.

Messages are rendered as Markdown, but any HTML in them must stay inert text: a
character card or a model reply could carry `<script>` or `<img onerror=…>`. Outside
code spans and fenced blocks, `&` and `<` are escaped, so the browser shows them
literally; inside code, Markdown already shows them literally. Image syntax is
defused too, so a message cannot make the browser fetch a remote URL.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^(\s{0,3})(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)


def inert_markdown(text: str) -> str:
    """Markdown source whose HTML cannot render or run."""
    out: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(2)[0] * 3
            out.append(line)
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append(line)
        else:
            out.append(_escape_outside_code(line))
    return "\n".join(out)


def _escape_outside_code(line: str) -> str:
    pieces: list[str] = []
    last = 0
    for match in _INLINE_CODE.finditer(line):
        pieces.append(_escape(line[last : match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(_escape(line[last:]))
    return "".join(pieces)


def _escape(text: str) -> str:
    # `>` stays: it cannot open a tag, and Markdown needs it for quotes.
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    return text.replace("![", "!\\[")
