"""The prompt for Story and Adventure: memory, world info, the story, the author's note.

The layout follows Kobold Lite, in the shared `PromptParts` model:

    [memory]                         head: byte-stable, so the KV-cache prefix keeps hitting
    [world info, "after memory"]     an injection right after the head (never trimmed)
    [story, one block per line]      body: the oldest lines are dropped first
      … [world info, "before A/N"][author's note] …   an injection N lines/characters
    [the newest line]                    before the end; the newest line is never dropped

Nothing is wrapped in a chat format: a story model continues the text it is given, and
so does an instruct model asked to. The story is cut into lines so that the author's
note can sit a fixed number of lines from the end (AI Dungeon's "3 lines above") or, as
Kobold does, a number of characters (snapped back to the start of a line), and so that
trimming keeps whole lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from engine.lore import Placement, Roll, WorldInfoLike, WorldInfoScan, activate_world_info, roll_d100
from engine.prompts.itemization import itemize
from engine.prompts.parts import Block, FittedPrompt, Injection, Label, PromptParts
from engine.tokens import Counter

DepthUnit = Literal["characters", "lines", "tokens"]
NOTE_SLOT = "<|>"
DEFAULT_WI_SHARE = 0.25
"""World info may take this share of the prompt budget; entries past it are left out."""


@dataclass(frozen=True)
class StorySteering:
    """What steers a story without showing in it."""

    memory: str = ""
    authors_note: str = ""
    authors_note_template: str = "[Author's note: <|>]"
    authors_note_depth: int = 320
    authors_note_unit: DepthUnit = "characters"
    world_info: Sequence[WorldInfoLike] = ()
    wi_placement: Placement = "after_memory"
    wi_search_depth: int = 0
    wi_share: float = DEFAULT_WI_SHARE


@dataclass(frozen=True)
class StoryPrompt:
    """The parts to fit, and what went into them (for the token counts the UI shows)."""

    parts: PromptParts
    scan: WorldInfoScan
    note_text: str  # the author's note as rendered from its template, or ""
    note_depth: int  # body blocks (lines) from the end where the note goes
    lines: int  # body blocks in the whole story


@dataclass(frozen=True)
class PartTokens:
    """Tokens each part of a fitted story prompt takes."""

    memory: int
    world_info: int
    authors_note: int
    story: int
    story_total: int  # the whole story, before trimming
    lines_dropped: int
    total: int


def render_note(template: str, note: str) -> str:
    """The author's note as it goes into the prompt: `note` where the template has `<|>`
    (after the template when it has none); "" when the note is empty."""
    if not note.strip():
        return ""
    if NOTE_SLOT in template:
        return template.replace(NOTE_SLOT, note.strip())
    return f"{template}{note.strip()}"


def story_lines(text: str) -> list[str]:
    """The story cut into lines, each keeping its newline; joined they give `text` back."""
    return text.splitlines(keepends=True)


def note_depth_in_lines(
    lines: Sequence[str], depth: int, unit: DepthUnit, count: Counter | None = None
) -> int:
    """How many lines from the end the author's note goes.

    In characters (or tokens, counted with `count`), the note goes before the line
    holding the point `depth` characters (tokens) from the end, so it never splits a
    line (Kobold nudges it to a line start too).
    At depth 0 it goes after the text, unless the last line is unfinished: there the
    model must go on with the writer's sentence, so the note goes before that line.
    """
    if depth <= 0:
        return 1 if lines and not lines[-1].endswith("\n") else 0
    if unit == "lines":
        return min(depth, len(lines))
    size = count if unit == "tokens" and count is not None else len
    seen = 0
    for back, line in enumerate(reversed(lines), start=1):
        seen += size(line)
        if seen >= depth:
            return back
    return len(lines)


def story_parts(
    text: str,
    steering: StorySteering,
    *,
    budget: int,
    count: Counter,
    roll: Roll = roll_d100,
) -> StoryPrompt:
    """Describe the prompt that continues `text` (the story so far).

    Args:
        text: the whole story, prompt first; the model continues from its last character.
        steering: memory, author's note and world info.
        budget: tokens the prompt may take (n_ctx minus the reply), for the world-info share.
        count: counts tokens; it should cache.
        roll: the world-info probability die (tests pass their own).
    """
    lines = story_lines(text)
    scan = activate_world_info(
        steering.world_info,
        text,
        placement=steering.wi_placement,
        search_depth=steering.wi_search_depth,
        roll=roll,
        budget=max(0, int(budget * steering.wi_share)),
        count=count,
    )
    note = render_note(steering.authors_note_template, steering.authors_note)
    depth = note_depth_in_lines(lines, steering.authors_note_depth, steering.authors_note_unit, count)
    injections: list[Injection] = []
    names = scan.names()
    after_memory = scan.text("after_memory")
    if after_memory:
        # Deeper than any story: it lands right after the head, whatever was trimmed.
        block = Block(after_memory, part="world_info", labels=_wi_labels(scan, "after_memory", names))
        injections.append(Injection(block, depth=len(lines) + 1, label="world info"))
    note_line = note + "\n" if note else ""
    steer = scan.text("before_authors_note") + note_line
    if steer:
        labels = (*_wi_labels(scan, "before_authors_note", names), Label("authors_note", note_line))
        block = Block(steer, part="authors_note", labels=labels)
        injections.append(Injection(block, depth=depth, label="author's note"))
    head = (
        steering.memory if not steering.memory or steering.memory.endswith("\n") else steering.memory + "\n"
    )
    parts = PromptParts(
        head=head,
        body=[Block(line, part="story") for line in lines],
        injections=injections,
        head_labels=(Label("memory", head),),
    )
    return StoryPrompt(parts=parts, scan=scan, note_text=note, note_depth=depth, lines=len(lines))


def part_tokens(prompt: StoryPrompt, fitted: FittedPrompt, count: Counter, exact: Counter) -> PartTokens:
    """Per-part token counts of a fitted story prompt, which add up to its total exactly.

    Args:
        count: counts a line left out (for the whole story's size); it should cache.
        exact: counts prefixes of the prompt (`engine.prompts.itemization`); it should not cache.
    """
    tokens: dict[str, int] = {}
    for part in itemize(fitted.text, fitted.spans, exact, known=fitted.n_tokens).parts:
        tokens[part.part] = tokens.get(part.part, 0) + part.tokens
    return PartTokens(
        memory=tokens.get("memory", 0),
        world_info=tokens.get("world_info", 0),
        authors_note=tokens.get("authors_note", 0),
        story=tokens.get("story", 0),
        # What was left out, counted line by line, on top of what went in.
        story_total=tokens.get("story", 0) + sum(count(b.text) for b in prompt.parts.body[: fitted.start]),
        lines_dropped=fitted.start,
        total=fitted.n_tokens,
    )


def _wi_labels(scan: WorldInfoScan, placement: Placement, names: dict[int, str]) -> tuple[Label, ...]:
    return tuple(
        Label("world_info", active.text, names[active.index])
        for active in scan.active
        if active.placement == placement
    )
