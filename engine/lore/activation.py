"""Lorebook (World Info) activation: which entries the recent chat brings into the prompt.

`activate` scans the newest messages for each entry's keys and returns the entries to
insert, in prompt order, within the token budget. The rules are the card spec's where
it speaks (V2 `character_book`, V3 `use_regex`, decorators) and SillyTavern's where it
is silent or where cards are written for SillyTavern:

- Books come in precedence order: the character's book first, then the user's world
  books. An earlier book wins the budget and wins ties in the prompt.
- A disabled entry never activates, whatever else it says. `@@activate` activates an
  entry without keys; `@@dont_activate` keeps it out (unless `@@activate` is also
  there, as in SillyTavern). A constant entry always activates, within the budget.
- Otherwise a primary key must match in the last `scan_depth` messages (the entry's
  `@@scan_depth` or SillyTavern `scan_depth`, else the book's, else the default). A
  selective entry with secondary keys also needs them, by SillyTavern's selective
  logic (default: any one of them); V3 ignores secondary keys for regex entries.
- Recursion: the text of activated entries is scanned again for further entries,
  step by step, until nothing new activates or `max_recursion_steps` is reached. Only
  books with recursive scanning take part, on both sides: their entries' text is
  scanned, and their entries can be found in it. Unset means on, as in SillyTavern.
- Budget: each book may use its `token_budget` (else `default_budget`) and all books
  together at most `total_budget`. Within one scan step, the entries that survive are
  those of the earliest book, then the highest `priority`, then the highest
  `insertion_order` (the spec: "drop the lowest priority first, falling back to
  insertion_order"; a low insertion_order sits high in the prompt, far from the chat,
  and SillyTavern also gives the budget to the highest order first). Once an entry
  does not fit, every later one of that book is dropped too, so what is left out is
  always the lowest-ranked. Entries found in the chat are budgeted before entries
  found through recursion, and overflowing the total budget stops recursion, as in
  SillyTavern. SillyTavern's `probability` is rolled before the budget.
- An entry's text (decorators stripped, macros expanded by `expand`) is added once,
  even if several keys, steps or books bring it; empty text adds nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.lore.keys import Decorators, KeyMatcher, KeyRules, ScanText, split_decorators
from engine.lore.model import Lorebook, LoreEntry, LoreRole, Position, SelectiveLogic
from engine.tokens import Counter

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_MAX_RECURSION_STEPS",
    "DEFAULT_REGEX_TIMEOUT",
    "ActiveEntry",
    "LoreActivation",
    "LoreEntry",
    "LoreRole",
    "Lorebook",
    "Position",
    "SelectiveLogic",
    "activate",
]

DEFAULT_BUDGET = 512  # tokens per book; callers pass about a quarter of the context, as SillyTavern does
DEFAULT_MAX_RECURSION_STEPS = 10
DEFAULT_REGEX_TIMEOUT = 0.05  # seconds per regex search


@dataclass(frozen=True)
class ActiveEntry:
    """An entry chosen by a scan, with the text that goes into the prompt."""

    entry: LoreEntry
    book: str
    text: str
    tokens: int
    position: Position
    depth: int | None  # messages from the end; None: placed before or after the character
    role: LoreRole


@dataclass(frozen=True)
class LoreActivation:
    """The result of a scan. Each group is in prompt order (ascending insertion_order)."""

    before_char: tuple[ActiveEntry, ...] = ()
    after_char: tuple[ActiveEntry, ...] = ()
    at_depth: tuple[ActiveEntry, ...] = ()
    dropped: tuple[ActiveEntry, ...] = ()  # activated, but over the budget
    warnings: tuple[str, ...] = ()

    @property
    def tokens(self) -> int:
        """Tokens of every inserted entry."""
        return sum(e.tokens for e in (*self.before_char, *self.after_char, *self.at_depth))

    def text(self, position: Position, joiner: str = "\n") -> str:
        """The entries for one position, joined."""
        group = self.before_char if position == "before_char" else self.after_char
        return joiner.join(e.text for e in group)

    def depth_groups(self, joiner: str = "\n") -> tuple[tuple[int, LoreRole, str], ...]:
        """(depth, role, text) for each depth and role, deepest first."""
        groups = self.depth_entries()
        return tuple((depth, role, joiner.join(e.text for e in entries)) for depth, role, entries in groups)

    def depth_entries(self) -> tuple[tuple[int, LoreRole, tuple[ActiveEntry, ...]], ...]:
        """(depth, role, entries) for each depth and role, deepest first."""
        groups: dict[tuple[int, LoreRole], list[ActiveEntry]] = {}
        for e in self.at_depth:
            groups.setdefault((e.depth or 0, e.role), []).append(e)
        ordered = sorted(groups.items(), key=lambda item: -item[0][0])
        return tuple((depth, role, tuple(entries)) for (depth, role), entries in ordered)


@dataclass(frozen=True, eq=False)
class _Candidate:
    rank: int  # the book's precedence, 0 first
    index: int  # the entry's place in its book
    book: Lorebook
    entry: LoreEntry
    text: str
    keys: tuple[str, ...]
    secondary: tuple[str, ...]
    rules: KeyRules
    decorators: Decorators
    scan_depth: int
    recursive: bool


def activate(
    books: Sequence[Lorebook],
    messages: Sequence[str],
    count_tokens: Counter,
    *,
    default_scan_depth: int = 2,
    default_budget: int = DEFAULT_BUDGET,
    total_budget: int | None = None,
    default_recursive: bool = True,
    default_case_sensitive: bool = False,
    default_whole_words: bool = True,
    max_recursion_steps: int = DEFAULT_MAX_RECURSION_STEPS,
    expand: Callable[[str], str] | None = None,
    rng: random.Random | None = None,
    regex_timeout: float = DEFAULT_REGEX_TIMEOUT,
) -> LoreActivation:
    """Choose the lorebook entries the recent chat activates (rules in the module docstring).

    Args:
        books: in precedence order: the character's book, then the user's world books.
        messages: the chat's message texts, newest last (`Name: text` or plain).
        count_tokens: counts the tokens of an entry's text.
        total_budget: a cap on all books together (None: only per-book budgets).
        expand: expands macros in keys and content (`{{user}}`, `{{char}}`, …).
        rng: rolls SillyTavern's per-entry probability; pass a seeded one in tests.
        regex_timeout: seconds one regex key may search before it counts as no match.
    """
    defaults = _Defaults(default_scan_depth, default_recursive, default_case_sensitive, default_whole_words)
    candidates = _candidates(books, expand or _same, defaults)
    scan = _Scan(messages, KeyMatcher(regex_timeout=regex_timeout))
    budget = _Budget(books, count_tokens, default_budget, total_budget)
    roll = rng or random.Random()
    pending = candidates
    warnings: list[str] = []
    step = 0
    while pending:
        found = [c for c in pending if scan.triggers(c, step)]
        lucky = [c for c in found if c.entry.probability >= 100 or roll.random() * 100 < c.entry.probability]
        fresh = budget.admit(lucky)
        recursion = [c.text for c in fresh if c.recursive and not c.entry.prevent_recursion]
        done = {id(c) for c in found}
        pending = [c for c in pending if id(c) not in done and c.recursive and not c.entry.exclude_recursion]
        if not recursion or budget.total_full or not pending:
            break
        if step >= max_recursion_steps:
            warnings.append(
                f"Lorebook recursion stopped after {max_recursion_steps} steps; entries that only "
                "deeper recursion would have found were left out."
            )
            break
        scan.recurse(recursion)
        step += 1
    return budget.result((*scan.matcher.warnings, *warnings))


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class _Defaults:
    """What applies where neither the entry nor its book says otherwise."""

    scan_depth: int
    recursive: bool
    case_sensitive: bool
    whole_words: bool


def _candidates(
    books: Sequence[Lorebook], expand: Callable[[str], str], defaults: _Defaults
) -> list[_Candidate]:
    """Every entry that could activate, with its text and matching rules worked out once."""
    out: list[_Candidate] = []
    for rank, book in enumerate(books):
        recursive = defaults.recursive if book.recursive_scanning is None else book.recursive_scanning
        book_depth = defaults.scan_depth if book.scan_depth is None else book.scan_depth
        for index, entry in enumerate(book.entries):
            if not entry.enabled:
                continue
            decorators, body = split_decorators(entry.content)
            text = expand(body).strip()
            if not text or (decorators.dont_activate and not decorators.activate):
                continue
            scan_depth = next(
                d for d in (decorators.scan_depth, entry.scan_depth, book_depth) if d is not None
            )
            out.append(
                _Candidate(
                    rank=rank,
                    index=index,
                    book=book,
                    entry=entry,
                    text=text,
                    keys=tuple(expand(k) for k in entry.keys),
                    secondary=tuple(expand(k) for k in entry.secondary_keys if k.strip()),
                    rules=_rules(entry, defaults),
                    decorators=decorators,
                    scan_depth=max(0, scan_depth),
                    recursive=recursive,
                )
            )
    return out


def _rules(entry: LoreEntry, defaults: _Defaults) -> KeyRules:
    case_sensitive = entry.case_sensitive
    whole_words = entry.match_whole_words
    return KeyRules(
        case_sensitive=defaults.case_sensitive if case_sensitive is None else case_sensitive,
        whole_words=defaults.whole_words if whole_words is None else whole_words,
        regex=bool(entry.use_regex) and not entry.st_keys,
    )


class _Scan:
    """Matches entries against the recent messages, then against each step's recursion text.

    Key hits are remembered per entry, so a recursion step reads only the text that step
    added: matching "messages + all recursion text so far" (SillyTavern's buffer) costs
    each key one read of each piece of text, however many steps there are.
    """

    def __init__(self, messages: Sequence[str], matcher: KeyMatcher) -> None:
        self._messages = messages
        self.matcher = matcher
        self._recent: dict[int, ScanText] = {}
        self._added = ScanText("")
        self._hits: dict[int, _Hits] = {}

    def recurse(self, texts: list[str]) -> None:
        self._added = ScanText("\n".join(texts))

    def triggers(self, c: _Candidate, step: int) -> bool:
        if step == 0 and (c.decorators.activate or c.entry.constant):
            return True
        scan = self._recent_text(c.scan_depth) if step == 0 else self._added
        hits = self._hits.setdefault(id(c), _Hits())
        hits.read(c, scan, self.matcher)
        return hits.satisfied(c)

    def _recent_text(self, depth: int) -> ScanText:
        if depth not in self._recent:
            recent = self._messages[max(0, len(self._messages) - depth) :] if depth else []
            self._recent[depth] = ScanText("\n".join(recent))
        return self._recent[depth]


class _Hits:
    """Which of an entry's keys have matched so far."""

    def __init__(self) -> None:
        self.primary = False
        self.secondary: set[int] = set()

    def read(self, c: _Candidate, scan: ScanText, matcher: KeyMatcher) -> None:
        label = f'"{c.entry.label}" of {c.book.name or "the lorebook"}'
        if not self.primary:
            self.primary = matcher.any_match(c.keys, scan, c.rules, label)
        if _uses_secondary(c):
            for index, key in enumerate(c.secondary):
                if index not in self.secondary and matcher.matches(key, scan, c.rules, label):
                    self.secondary.add(index)

    def satisfied(self, c: _Candidate) -> bool:
        if not self.primary or not _uses_secondary(c):
            return self.primary
        found, total = len(self.secondary), len(c.secondary)
        logic = c.entry.selective_logic
        if logic == "and_any":
            return found > 0
        if logic == "not_any":
            return found == 0
        return found == total if logic == "and_all" else found < total


def _uses_secondary(c: _Candidate) -> bool:
    """Secondary keys count for selective entries that have them, but not for regex entries (V3)."""
    return c.entry.selective and bool(c.secondary) and not c.rules.regex


class _Budget:
    """Admits activated entries while their books' budgets and the total budget allow."""

    def __init__(self, books: Sequence[Lorebook], count: Counter, default: int, total: int | None) -> None:
        self._limits = [book.token_budget or default for book in books]
        self._used = [0] * len(books)
        self._count = count
        self._total = total
        self._full_books: set[int] = set()
        self.total_full = False
        self._texts: set[str] = set()
        self._kept: list[tuple[_Candidate, ActiveEntry]] = []
        self._dropped: list[ActiveEntry] = []

    def admit(self, found: list[_Candidate]) -> list[_Candidate]:
        """Keep what fits, best first; return the candidates kept."""
        kept: list[_Candidate] = []
        for c in sorted(found, key=_keep_order):
            if c.text in self._texts:
                continue  # the same text is already in the prompt
            active = _active(c, self._count(c.text))
            if self.total_full or c.rank in self._full_books:
                self._dropped.append(active)
            elif self._used[c.rank] + active.tokens > self._limits[c.rank]:
                self._full_books.add(c.rank)
                self._dropped.append(active)
            elif self._total is not None and sum(self._used) + active.tokens > self._total:
                self.total_full = True
                self._dropped.append(active)
            else:
                self._used[c.rank] += active.tokens
                self._texts.add(c.text)
                self._kept.append((c, active))
                kept.append(c)
        return kept

    def result(self, warnings: tuple[str, ...]) -> LoreActivation:
        ordered = [a for _c, a in sorted(self._kept, key=lambda pair: _prompt_order(pair[0]))]
        return LoreActivation(
            before_char=tuple(a for a in ordered if a.depth is None and a.position == "before_char"),
            after_char=tuple(a for a in ordered if a.depth is None and a.position == "after_char"),
            at_depth=tuple(a for a in ordered if a.depth is not None),
            dropped=tuple(self._dropped),
            warnings=warnings,
        )


def _keep_order(c: _Candidate) -> tuple[int, float, float, int]:
    return (c.rank, -(c.entry.priority or 0.0), -c.entry.insertion_order, c.index)


def _prompt_order(c: _Candidate) -> tuple[float, int, int]:
    return (c.entry.insertion_order, c.rank, c.index)


def _active(c: _Candidate, tokens: int) -> ActiveEntry:
    depth = c.decorators.depth if c.decorators.depth is not None else c.entry.depth
    return ActiveEntry(
        entry=c.entry,
        book=c.book.name,
        text=c.text,
        tokens=tokens,
        position=c.entry.placement,
        depth=depth,
        role=c.decorators.role or c.entry.role,
    )
