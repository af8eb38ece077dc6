"""Prompts that pass through the model's own chat template after they are fitted.

The assembler fits a prompt in the marked format (`presets.template_format`) and the
template then rewrites it whole. The spans the inspector shows are found again in the
rendered text: each message's words, in order; what the template adds between two
belongs to the one before, what it writes first is the "template" part and what it
writes last (the reply's opening) the "tail".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from engine.prompts.parts import Rewrite, Span
from presets.template_format import MARKS

_MESSAGES = re.compile(f"[{MARKS}]")
TEMPLATE_PART = "template"  # what the template writes before the first message


def through_template(render_marked: Callable[[str], str]) -> Rewrite:
    """The rewrite `fit_prompt` applies: `render_marked` (`ChatTemplate.render_marked`) on
    the text, and the spans found again in what it gives."""

    def rewrite(text: str, spans: tuple[Span, ...]) -> tuple[str, tuple[Span, ...]]:
        rendered = render_marked(text)
        return rendered, respan(text, spans, rendered)

    return rewrite


def respan(marked: str, spans: Sequence[Span], rendered: str) -> tuple[Span, ...]:
    """The spans of `marked`, found again in `rendered`; they cover it from start to end.

    What the template writes before the first message is the "template" part, and what
    it writes after the last (the reply's opening) the "tail".
    """
    found: list[tuple[int, int, str, str]] = []  # (start, end, part, name) of each message's words
    cursor = 0
    for span in spans:
        # A span may hold several messages: the template writes its own text between them.
        for piece in _MESSAGES.split(marked[span.start : span.end]):
            words = piece.strip()
            at = rendered.find(words, cursor) if words else -1
            if at >= 0:
                found.append((at, at + len(words), span.part, span.name))
                cursor = at + len(words)
    if not found:
        return (Span(0, len(rendered), TEMPLATE_PART),) if rendered else ()
    pieces = [(0, found[0][0], TEMPLATE_PART, "")]
    for (start, _, part, name), following in zip(found, found[1:], strict=False):
        pieces.append((start, following[0], part, name))
    start, end, part, name = found[-1]
    pieces += [(start, end, part, name), (end, len(rendered), "tail", "")]
    merged: list[Span] = []
    for start, end, part, name in pieces:
        if end <= start:
            continue
        if merged and (merged[-1].part, merged[-1].name) == (part, name):
            merged[-1] = Span(merged[-1].start, end, part, name)
        else:
            merged.append(Span(start, end, part, name))
    return tuple(merged)
