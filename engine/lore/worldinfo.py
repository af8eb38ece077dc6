"""Kobold-style world info: which entries (story cards) a story's text brings into the prompt.

The rules are Kobold Lite's:

- An entry fires when one of its primary keys occurs in the scanned text, as a plain
  substring (not a whole word), ignoring case unless `case_sensitive` is set.
- A `selective` entry also looks at its secondary and anti keys:
  secondary and anti keys both set: primary AND secondary AND NOT anti;
  only secondary keys: primary AND secondary; only anti keys: primary AND NOT anti;
  neither: any primary key, as for a non-selective entry (which ignores both lists).
- A `constant` entry fires without any key.
- A fired entry (a constant one too, as in Lite) with `probability` below 100 is then
  rolled: a roll of 1–100 must be *below* the probability (so 50 means 49 in 100, as in
  Lite; 0 never fires).
- Disabled entries and entries with no content never fire.
- Only the story text is scanned (not memory, the author's note or other entries), so
  entries never trigger each other. `search_depth` limits the scan to the last N
  *characters* (Lite's setting; 0 = the whole text). Characters, not chunks, so the
  reach does not depend on how long each reply happened to be.

The result keeps list order (Kobold has no priority field). With a token budget, entries
are dropped from the end of the list until the rest fits.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Placement = Literal["after_memory", "before_authors_note"]
Counter = Callable[[str], int]
Roll = Callable[[], int]


class WorldInfoLike(Protocol):
    """What the scan reads from an entry. `StoryCard` and the store's story entries
    (`store.stories.WorldInfoEntry`) both have these fields."""

    @property
    def keys(self) -> Sequence[str]: ...
    @property
    def secondary_keys(self) -> Sequence[str]: ...
    @property
    def anti_keys(self) -> Sequence[str]: ...
    @property
    def content(self) -> str: ...
    @property
    def comment(self) -> str: ...
    @property
    def selective(self) -> bool: ...
    @property
    def constant(self) -> bool: ...
    @property
    def probability(self) -> int: ...
    @property
    def enabled(self) -> bool: ...


@dataclass(frozen=True)
class StoryCard:
    """One world-info entry (AI Dungeon calls them story cards)."""

    keys: tuple[str, ...] = ()
    secondary_keys: tuple[str, ...] = ()
    anti_keys: tuple[str, ...] = ()
    content: str = ""
    comment: str = ""
    selective: bool = False
    constant: bool = False
    probability: int = 100
    enabled: bool = True


@dataclass(frozen=True)
class ActiveEntry:
    """An entry the scan brought in, where it goes, and what it costs."""

    entry: WorldInfoLike
    index: int  # position in the list that was scanned
    placement: Placement
    text: str  # the content as it goes into the prompt: followed by a newline, as Lite
    tokens: int  # 0 when no budget was given


@dataclass(frozen=True)
class WorldInfoScan:
    """The outcome of one scan: `active` in list order, and what the budget dropped."""

    active: tuple[ActiveEntry, ...]
    dropped: tuple[ActiveEntry, ...] = ()

    def text(self, placement: Placement) -> str:
        """The active entries for one place in the prompt, joined in list order."""
        return "".join(a.text for a in self.active if a.placement == placement)

    def names(self) -> dict[int, str]:
        """Each active entry's name by its list index, for the prompt inspector: its comment,
        else its keys, else its place in the list (`#2`... where two share a name)."""
        names: dict[int, str] = {}
        seen: dict[str, int] = {}
        for active in self.active:
            name = entry_name(active.entry, active.index)
            seen[name] = seen.get(name, 0) + 1
            names[active.index] = name if seen[name] == 1 else f"{name} #{seen[name]}"
        return names


def entry_name(entry: WorldInfoLike, index: int) -> str:
    """What to call an entry: its comment, else its keys, else its place in the list."""
    keys = ", ".join(k for k in entry.keys if k)
    return entry.comment.strip() or keys or f"entry {index + 1}"


def roll_d100() -> int:
    """A fair roll of 1–100 (the default; tests pass their own)."""
    return random.randint(1, 100)


def scanned_text(text: str, search_depth: int) -> str:
    """The part of the story world info looks at: the last `search_depth` characters,
    or all of it for 0."""
    if search_depth < 0:
        raise ValueError("search_depth cannot be negative")
    return text[-search_depth:] if search_depth else text


def keys_match(entry: WorldInfoLike, haystack: str, *, case_sensitive: bool = False) -> bool:
    """Whether the entry's keys fire on `haystack` (constant and probability aside)."""

    def found(keys: Sequence[str]) -> bool:
        wanted = (k.strip() for k in keys)
        return any(k and (k if case_sensitive else k.lower()) in haystack for k in wanted)

    if not case_sensitive:
        haystack = haystack.lower()
    has_secondary = any(k.strip() for k in entry.secondary_keys)
    has_anti = any(k.strip() for k in entry.anti_keys)
    primary = found(entry.keys)
    if not entry.selective or not (has_secondary or has_anti):
        return primary
    if has_secondary and has_anti:
        return primary and found(entry.secondary_keys) and not found(entry.anti_keys)
    if has_secondary:
        return primary and found(entry.secondary_keys)
    return primary and not found(entry.anti_keys)


def activate(
    entries: Sequence[WorldInfoLike],
    text: str,
    *,
    placement: Placement = "after_memory",
    search_depth: int = 0,
    case_sensitive: bool = False,
    roll: Roll = roll_d100,
    budget: int | None = None,
    count: Counter | None = None,
) -> WorldInfoScan:
    """Scan `text` (the story) and return the entries that fire, in list order.

    Args:
        entries: the world info, in the writer's order.
        text: the story text to scan (memory and the author's note are not scanned).
        placement: where the entries go: after memory, or before the author's note.
        search_depth: scan only the last N characters; 0 scans everything.
        case_sensitive: match keys with their case (Lite's "case sensitive WI").
        roll: returns 1–100; called once per fired entry whose probability is below 100.
        budget: most tokens the entries may take together; entries are dropped from the
            end of the list until the rest fits. None means no limit.
        count: counts the tokens of a text; required with a budget.
    """
    if budget is not None and count is None:
        raise ValueError("a world-info budget needs a token counter")
    haystack = scanned_text(text, search_depth)
    active: list[ActiveEntry] = []
    for index, entry in enumerate(entries):
        if not entry.enabled or not entry.content:
            continue
        if not entry.constant and not keys_match(entry, haystack, case_sensitive=case_sensitive):
            continue
        if entry.probability < 100 and not roll() < entry.probability:
            continue
        body = entry.content + "\n"
        tokens = count(body) if count is not None and budget is not None else 0
        active.append(ActiveEntry(entry, index, placement, body, tokens))
    if budget is None:
        return WorldInfoScan(tuple(active))
    kept = len(active)
    while kept and sum(a.tokens for a in active[:kept]) > budget:
        kept -= 1
    return WorldInfoScan(tuple(active[:kept]), tuple(active[kept:]))
