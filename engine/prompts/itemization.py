"""How many tokens each part of a fitted prompt takes, adding up to the prompt exactly.

Counting each part on its own does not add up: a tokenizer merges characters across
the seams between parts, so the pieces' counts sum to a little more or less than the
whole. Here a part's count is the tokens of the text up to its end minus the tokens of
the text up to its start. The differences telescope, so the parts always sum to the
count of the whole prompt, whatever the tokenizer does at the seams; a token that
straddles a seam counts for the part where it starts.

Counting prefixes is one tokenization per boundary, so neighbouring stretches of the
same part are merged first (`FittedPrompt.spans` already are) and the counter should
not cache: every prefix is new text, and a cache would fill with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.prompts.parts import Span
from engine.tokens import Counter

__all__ = ["BOS_PART", "Itemization", "PartCount", "Segment", "itemize"]

BOS_PART = "bos"
"""The part for the start-of-text token a backend puts before every prompt."""
UNLABELLED = "prompt"


@dataclass(frozen=True)
class Segment:
    """One stretch of the prompt text, its part, and the tokens it adds."""

    part: str
    name: str
    start: int
    end: int
    tokens: int


@dataclass(frozen=True)
class PartCount:
    """One part of the prompt (all its stretches together) and its tokens."""

    part: str
    name: str
    tokens: int
    chars: int


@dataclass(frozen=True)
class Itemization:
    """A prompt split into parts. `sum(p.tokens for p in parts) == total`, always."""

    segments: tuple[Segment, ...]  # in text order, covering the text; the BOS is not one
    parts: tuple[PartCount, ...]  # by (part, name) in order of first appearance, the BOS first
    total: int  # tokens of the prompt as the model evaluates it, BOS included


def itemize(
    text: str, spans: Sequence[Span], count: Counter, *, bos: bool = False, known: int | None = None
) -> Itemization:
    """Split `text` into the parts `spans` name and count each part's tokens exactly.

    Args:
        text: the prompt text (as `FittedPrompt.text`).
        spans: stretches of `text` in order; what they leave uncovered becomes a part
            named "prompt".
        count: counts the tokens of a text (without BOS); it should not cache.
        bos: the model puts one start-of-text token before the text.
        known: the tokens of the whole text, when already counted (`FittedPrompt.n_tokens`).
    """
    cover = _cover(text, spans)
    at: dict[int, int] = {0: 0}
    if known is not None:
        at[len(text)] = known
    for span in cover:
        if span.end not in at:
            at[span.end] = count(text[: span.end])
    segments = tuple(Segment(s.part, s.name, s.start, s.end, at[s.end] - at[s.start]) for s in cover)
    totals: dict[tuple[str, str], list[int]] = {}
    if bos:
        totals[(BOS_PART, "")] = [1, 0]
    for segment in segments:
        tokens_chars = totals.setdefault((segment.part, segment.name), [0, 0])
        tokens_chars[0] += segment.tokens
        tokens_chars[1] += segment.end - segment.start
    parts = tuple(PartCount(part, name, t, c) for (part, name), (t, c) in totals.items())
    return Itemization(segments, parts, at[len(text)] + (1 if bos else 0))


def _cover(text: str, spans: Sequence[Span]) -> list[Span]:
    """`spans` clipped to the text, in order, with every gap filled."""
    cover: list[Span] = []
    position = 0
    for span in sorted(spans, key=lambda s: s.start):
        start, end = max(span.start, position), min(span.end, len(text))
        if end <= start:
            continue
        if start > position:
            cover.append(Span(position, start, UNLABELLED))
        cover.append(Span(start, end, span.part, span.name))
        position = end
    if position < len(text):
        cover.append(Span(position, len(text), UNLABELLED))
    return cover
