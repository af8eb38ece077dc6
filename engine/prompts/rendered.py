"""Prompts that pass through the model's own chat template after they are fitted.

The assembler fits a prompt in the marked format (`presets.template_format`) and the
template then rewrites it whole. The spans the inspector shows are found again in the
rendered text: each stretch's words, marks left out, in order; what the template adds
around them belongs to the stretch before (the first to the first).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from engine.prompts.parts import Rewrite, Span
from presets.template_format import MARKS

_MESSAGES = re.compile(f"[{MARKS}]")


def through_template(render_marked: Callable[[str], str]) -> Rewrite:
    """The rewrite `fit_prompt` applies: `render_marked` (`ChatTemplate.render_marked`) on
    the text, and the spans found again in what it gives."""

    def rewrite(text: str, spans: tuple[Span, ...]) -> tuple[str, tuple[Span, ...]]:
        rendered = render_marked(text)
        return rendered, respan(text, spans, rendered)

    return rewrite


def respan(marked: str, spans: Sequence[Span], rendered: str) -> tuple[Span, ...]:
    """The spans of `marked`, found again in `rendered`; they cover it from start to end."""
    found: list[tuple[int, str, str]] = []
    cursor = 0
    for span in spans:
        # A span may hold several messages: the template writes its own text between them.
        for piece in _MESSAGES.split(marked[span.start : span.end]):
            words = piece.strip()
            at = rendered.find(words, cursor) if words else -1
            if at >= 0:
                found.append((at, span.part, span.name))
                cursor = at + len(words)
    if not rendered or not found:
        part, name = (spans[0].part, spans[0].name) if spans else ("prompt", "")
        return (Span(0, len(rendered), part, name),) if rendered else ()
    starts = [0] + [at for at, _, _ in found[1:]]
    ends = starts[1:] + [len(rendered)]
    merged: list[Span] = []
    for start, end, (_, part, name) in zip(starts, ends, found, strict=True):
        if merged and (merged[-1].part, merged[-1].name) == (part, name):
            merged[-1] = Span(merged[-1].start, end, part, name)
        elif end > start:
            merged.append(Span(start, end, part, name))
    return tuple(merged)
