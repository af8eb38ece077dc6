"""Making user and model text safe to show.

Messages are rendered as Markdown, but any HTML in them must stay inert text: a
character card or a model reply could carry `<script>` or `<img onerror=…>`. Outside
code, `&` and `<` are escaped, so the browser shows them literally; inside code,
Markdown already shows them literally. Image syntax is defused too, so a message
cannot make the browser fetch a remote URL.

Safety rests on one rule: text is left raw only where a CommonMark renderer is
certain to treat it as code. Where that is in doubt (a fence inside a list, a code
span that might close on a later line), the text is escaped: at worst a `&lt;` shows
inside code, never a live tag outside it.
"""

from __future__ import annotations

import re

# Only fences at the start of a line: one indented inside a list item or a quote can
# end with its container, and the lines after it would no longer be code.
_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_TICKS = re.compile(r"`+")


def inert_markdown(text: str) -> str:
    """Markdown source whose HTML cannot render or run."""
    out: list[str] = []
    fence: str | None = None
    unsure = False  # an earlier line of this paragraph opened a code span it did not close
    for line in text.split("\n"):
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append(line)
            continue
        opened = _fence_opening(line)
        if opened:
            fence, unsure = opened, False
            out.append(line)
            continue
        if not line.strip():
            unsure = False  # a blank line ends the paragraph, and any open code span
        if unsure:
            out.append(_escape(line))
        else:
            escaped, unsure = _escape_outside_code(line)
            out.append(escaped)
    return "\n".join(out)


def _fence_opening(line: str) -> str | None:
    match = _FENCE.match(line)
    if match is None:
        return None
    marks, info = match.groups()
    if marks[0] == "`" and "`" in info:
        return None  # not a fence in CommonMark: a backtick fence's info has no backtick
    return marks[0] * 3


def _escape_outside_code(line: str) -> tuple[str, bool]:
    """The line with everything outside its code spans escaped, and whether a backtick
    run was left open (Markdown might close it on a later line)."""
    spans, left_open = _code_spans(line)
    pieces: list[str] = []
    last = 0
    for start, end in spans:
        pieces += [_escape(line[last:start]), line[start:end]]
        last = end
    pieces.append(_escape(line[last:]))
    return "".join(pieces), left_open


def _code_spans(line: str) -> tuple[list[tuple[int, int]], bool]:
    """Code spans as CommonMark pairs them: a backtick run closes at the next run of
    the same length. A backslash makes only the first backtick of a run literal.
    Stops at the first run that finds no partner on this line."""
    runs = [(m.start(), m.end()) for m in _TICKS.finditer(line)]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(runs):
        start, end = runs[i]
        if _backslashed(line, start):
            start += 1
            if start == end:
                i += 1
                continue
        length = end - start
        partner = next((j for j in range(i + 1, len(runs)) if runs[j][1] - runs[j][0] == length), None)
        if partner is None:
            return spans, True
        spans.append((start, runs[partner][1]))
        i = partner + 1
    return spans, False


def _backslashed(line: str, at: int) -> bool:
    slashes = len(line[:at]) - len(line[:at].rstrip("\\"))
    return slashes % 2 == 1


def _escape(text: str) -> str:
    # `>` stays: it cannot open a tag, and Markdown needs it for quotes.
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    return text.replace("![", "!\\[")
