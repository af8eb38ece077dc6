"""One prompt model for every mode, and the assembler that fits it to the context.

Chat, Story and Adventure all describe their prompt as `PromptParts`:

- `head`: byte-stable text at the very start (system prompt, character, memory);
- `optional`: blocks that go right after the head while room allows, dropped oldest
  first before any body block (example dialogue);
- `body`: the blocks that grow (turns, story chunks), dropped oldest first, in blocks;
- `injections`: text placed a number of body blocks from the end (author's note, lore);
- `tail`: what makes the model start writing (the assistant prefix, or nothing).

The assembler keeps the head identical between turns and drops body blocks from just
after it, so the KV-cache prefix keeps hitting. Once it has to drop, it drops a
`headroom` share at once and then stays anchored there for later turns, so the prompt
start changes rarely instead of every turn.

Every piece can say what it is, for the prompt inspector: a block's `part` names the
whole block ("history", "examples"), and its `labels` name stretches inside it (each
lore entry of a note, the card fields in the head). The fitted prompt carries `spans`
that cover its text from the first character to the last, so the inspector can count
each part's tokens (`engine.prompts.itemization`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.errors import ContextOverflowError
from engine.tokens import Counter


@dataclass(frozen=True)
class Label:
    """Names a stretch of a piece's text: `text` is looked for in the rendered piece after
    the stretch the previous label found. What lies between two stretches belongs to the
    one before it (what comes before the first, to the first)."""

    part: str  # what kind of part: "system", "lore", "memory", ...
    text: str
    name: str = ""  # which one: a lore entry's name


@dataclass(frozen=True)
class Span:
    """A stretch `[start, end)` of the fitted prompt's text, and which part it is."""

    start: int
    end: int
    part: str
    name: str = ""


@dataclass(frozen=True)
class Block:
    """An atomic piece of the prompt. `lead` replaces `text` when the block comes first
    after the head (formats that fold the system prompt into the first user turn).

    `part` and `labels` only describe the block (see `Label`); they never change its text.
    """

    text: str
    lead: str | None = None
    part: str = ""  # what the block is; "" takes its place's name ("body", the injection's label)
    labels: tuple[Label, ...] = ()

    def render(self, first: bool) -> str:
        return self.lead if first and self.lead is not None else self.text


@dataclass(frozen=True)
class Injection:
    """Text placed `depth` body blocks before the end (0 = after the newest block)."""

    block: Block
    depth: int
    label: str = "injection"


@dataclass(frozen=True)
class PromptParts:
    head: str = ""
    optional: Sequence[Block] = ()
    body: Sequence[Block] = ()
    injections: Sequence[Injection] = ()
    tail: Block = field(default_factory=lambda: Block(""))
    keep_last: int = 1  # the newest body blocks that may never be dropped
    head_labels: tuple[Label, ...] = ()  # what the head is made of (unlabelled: "head")


Rewrite = Callable[[str, tuple[Span, ...]], tuple[str, tuple[Span, ...]]]
"""Rewrites a fitted prompt's text and spans as the model will read them."""


@dataclass(frozen=True)
class FittedPrompt:
    """The prompt text that fits, and where it came from."""

    text: str
    head: str
    start: int  # index of the first body block kept; everything before it was dropped
    kept_optional: int
    n_tokens: int  # exact count of `text` (BOS not included)
    budget: int
    part_tokens: Mapping[str, int]
    spans: tuple[Span, ...] = ()  # which part each stretch of `text` is; they cover all of it

    @property
    def dropped(self) -> int:
        return self.start


def fit_prompt(
    parts: PromptParts,
    budget: int,
    count: Counter,
    *,
    anchor: int | None = None,
    headroom: float = 0.25,
    rewrite: Rewrite | None = None,
) -> FittedPrompt:
    """Fit `parts` into `budget` tokens.

    Args:
        budget: tokens available to the prompt (n_ctx minus the reply length).
        count: counts the tokens of a piece of text; it should cache.
        anchor: the body start used last time; kept while it still fits, so the
            prompt's beginning stays stable across turns.
        headroom: the share of the body budget freed when blocks must be dropped.
        rewrite: rewrites the fitted text, and its spans, as the model reads it (its own
            chat template: `engine.prompts.rendered`); the budget holds for the result.

    Raises:
        ContextOverflowError: the head, tail, injections and the newest `keep_last`
            body blocks alone do not fit.
    """
    fixed = count(parts.head) + count(parts.tail.text) + sum(count(i.block.text) for i in parts.injections)
    sizes = _sizes_from_end(parts.body, count, budget - fixed)
    keep = min(parts.keep_last, len(parts.body))
    pinned = parts.body[len(parts.body) - keep :]
    # A lower bound: a block (or the tail) rendered first after the head uses its lead.
    least = count(parts.head) + sum(count(i.block.text) for i in parts.injections)
    least += sum(_smallest(b, count) for b in [*pinned, parts.tail])
    if least > budget:
        raise ContextOverflowError(
            f"The prompt needs {least} tokens before any history, but only {budget} "
            "fit. Shorten the system prompt or the message, lower max new tokens, or load "
            "the model with a larger context."
        )
    start = _choose_start(parts.body, sizes, budget - fixed, keep, anchor, headroom)
    body_tokens = sum(sizes[i] for i in range(start, len(parts.body)))
    kept_optional = (
        _optional_that_fit(parts.optional, count, budget - fixed - body_tokens) if start == 0 else 0
    )
    while True:
        pieces = _render(parts, start, kept_optional)
        text = "".join(piece.text for piece in pieces)
        spans = _spans(pieces)
        if rewrite is not None:
            text, spans = rewrite(text, spans)
        exact = count(text)
        if exact <= budget:
            break
        # Per-piece counts can undercount at the seams, and a template rendering the prompt
        # adds its own text: drop blocks worth the excess (one at least), then count again.
        if kept_optional:
            kept_optional -= 1
        elif start < len(parts.body) - keep:
            start = _past_excess(parts.body, start, len(parts.body) - keep, exact - budget, count)
        else:
            raise ContextOverflowError(f"The prompt is {exact} tokens and cannot be trimmed below {budget}.")
    return FittedPrompt(
        text=text,
        head=parts.head,
        start=start,
        kept_optional=kept_optional,
        n_tokens=exact,
        budget=budget,
        part_tokens={
            "head": count(parts.head),
            "optional": sum(count(b.text) for b in _kept(parts.optional, kept_optional)),
            "body": sum(sizes[i] for i in range(start, len(parts.body))),
            "injections": sum(count(i.block.text) for i in parts.injections),
            "tail": count(parts.tail.text),
        },
        spans=spans,
    )


def _past_excess(body: Sequence[Block], start: int, stop: int, excess: int, count: Counter) -> int:
    """The body start after dropping the oldest kept blocks until they free `excess` tokens
    (at least one block, and never past `stop`)."""
    freed = 0
    while start < stop and freed < excess:
        freed += max(1, count(body[start].text))
        start += 1
    return start


def _smallest(block: Block, count: Counter) -> int:
    return min(count(block.text), count(block.lead)) if block.lead is not None else count(block.text)


def _sizes_from_end(body: Sequence[Block], count: Counter, available: int) -> dict[int, int]:
    """Token sizes of the newest body blocks, enough to fill `available` and one more."""
    sizes: dict[int, int] = {}
    total = 0
    for index in range(len(body) - 1, -1, -1):
        sizes[index] = count(body[index].text)
        total += sizes[index]
        if total > available:
            break
    return sizes


def _choose_start(
    body: Sequence[Block],
    sizes: Mapping[int, int],
    available: int,
    keep: int,
    anchor: int | None,
    headroom: float,
) -> int:
    newest_droppable = len(body) - keep
    minimal = len(body)
    total = 0
    for index in range(len(body) - 1, -1, -1):
        if index not in sizes or total + sizes[index] > available:
            break
        total += sizes[index]
        minimal = index
    minimal = min(minimal, newest_droppable)
    if minimal == 0:
        return 0
    if anchor is not None and minimal <= anchor <= newest_droppable:
        return anchor
    # Drop a chunk now so the next few turns keep the same start (and the KV prefix).
    target = available * (1.0 - headroom)
    start = minimal
    while start < newest_droppable and total > target:
        total -= sizes[start]
        start += 1
    return start


def _optional_that_fit(optional: Sequence[Block], count: Counter, available: int) -> int:
    """How many of the newest optional blocks fit (the oldest are pushed out first)."""
    kept = 0
    total = 0
    for block in reversed(optional):
        size = count(block.text)
        if total + size > available:
            break
        total += size
        kept += 1
    return kept


def _kept(optional: Sequence[Block], kept: int) -> Sequence[Block]:
    return optional[len(optional) - kept :] if kept else ()


@dataclass(frozen=True)
class _Piece:
    """One rendered piece of the prompt and what it is."""

    text: str
    part: str
    labels: tuple[Label, ...] = ()


def _render(parts: PromptParts, start: int, kept_optional: int) -> list[_Piece]:
    body = list(parts.body[start:])
    by_position: dict[int, list[tuple[Block, str]]] = {}
    for injection in parts.injections:
        position = max(0, len(body) - max(0, injection.depth))
        by_position.setdefault(position, []).append((injection.block, injection.label))
    sequence: list[tuple[Block, str]] = [(b, "optional") for b in _kept(parts.optional, kept_optional)]
    for position in range(len(body) + 1):
        sequence.extend(by_position.get(position, ()))
        if position < len(body):
            sequence.append((body[position], "body"))
    first = bool(parts.head)
    pieces = [_Piece(parts.head, "head", parts.head_labels)]
    for block, place in sequence:
        pieces.append(_Piece(block.render(first), block.part or place, block.labels))
        first = False
    pieces.append(_Piece(parts.tail.render(first), parts.tail.part or "tail", parts.tail.labels))
    return pieces


def _spans(pieces: Sequence[_Piece]) -> tuple[Span, ...]:
    """Spans covering the joined pieces, neighbours of the same part and name merged."""
    spans: list[Span] = []
    offset = 0
    for piece in pieces:
        for start, end, part, name in _labelled(piece):
            begin, finish = offset + start, offset + end
            last = spans[-1] if spans else None
            if last is not None and (last.part, last.name) == (part, name):
                spans[-1] = Span(last.start, finish, part, name)
            else:
                spans.append(Span(begin, finish, part, name))
        offset += len(piece.text)
    return tuple(spans)


def _labelled(piece: _Piece) -> list[tuple[int, int, str, str]]:
    """(start, end, part, name) within one piece, covering all of it (see `Label`)."""
    if not piece.text:
        return []
    found: list[tuple[int, Label]] = []
    position = 0
    for label in piece.labels:
        at = piece.text.find(label.text, position) if label.text else -1
        if at >= 0:
            found.append((at, label))
            position = at + len(label.text)
    if not found:
        return [(0, len(piece.text), piece.part, "")]
    ends = [at for at, _ in found[1:]] + [len(piece.text)]
    starts = [0] + ends[:-1]
    return [(lo, hi, label.part, label.name) for lo, hi, (_, label) in zip(starts, ends, found, strict=True)]
