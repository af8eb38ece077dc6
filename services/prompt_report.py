"""The prompt inspector: what a prompt sent to the model was made of, part by part.

A report lists the parts of one fitted prompt (system prompt, card fields, each lore or
world-info entry by name, examples, the history span, notes, the tail) with their token
counts, which add up exactly to the prompt's count (`engine.prompts.itemization`); the start
token is a row of its own when the model adds one. After a run it also says how many of
those tokens came from the KV cache and how many were evaluated.

Reports are small, so a chat keeps one in each reply's `meta["prompt"]`. The full text
is larger (up to four characters per token of context), so only the newest
`KEPT_PROMPTS` are kept, in memory (`PromptLog`, keyed by the run's id); an older
reply's inspector shows its parts without the text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from engine.prompts import BOS_PART, FittedPrompt, itemize
from engine.run import Run
from engine.tokens import Counter
from engine.types import Usage
from presets.errors import HearthError

KEPT_PROMPTS = 16
"""Full prompt texts kept in memory, newest first; older ones keep only their parts."""
META_KEY = "prompt"

Mode = Literal["chat", "story", "adventure", "api"]

_NAMES: dict[str, str] = {
    "bos": "Start token",
    "head": "Start of the prompt",
    "template": "Written by the model's template",
    "system": "System prompt",
    "description": "Description",
    "personality": "Personality",
    "scenario": "Scenario",
    "persona": "Persona",
    "lore": "Lore",
    "examples": "Example dialogue",
    "history": "Chat history",
    "depth_note": "Character's note",
    "post_history": "Post-history instructions",
    "note": "System note",
    "tail": "Reply prefix",
    "continued": "Message being continued",
    "memory": "Memory",
    "world_info": "World info",
    "authors_note": "Author's note",
    "story": "Story",
    "prompt": "Prompt",
}
_ADVENTURE_NAMES = {"world_info": "Story card", "story": "Transcript"}


@dataclass(frozen=True)
class PartRow:
    """One row of the inspector's table."""

    part: str  # the part's kind ("lore", "history", ...)
    name: str  # which one, for kinds that have several ("Dragon")
    label: str  # what the table shows ("Lore: Dragon")
    tokens: int


@dataclass(frozen=True)
class PromptReport:
    """The parts of one prompt; `sum(row.tokens for row in rows) == total`."""

    rows: tuple[PartRow, ...]
    total: int  # the prompt's tokens as the model evaluates it (start token included)
    dropped: tuple[str, ...] = ()  # what was left out to fit, in words
    reused: int | None = None  # from the KV cache (None: not run yet)
    evaluated: int | None = None
    estimate: bool = False  # counted by a remote server's estimate, not the model's tokenizer
    key: str = ""  # where `PromptLog` keeps the full text ("" when it never did)

    def with_usage(self, usage: Usage) -> PromptReport:
        return replace(self, reused=usage.prompt_reused, evaluated=usage.prompt_evaluated)

    def to_meta(self) -> dict[str, Any]:
        """The report as plain JSON values, for a message's meta."""
        return {
            "parts": [[row.part, row.name, row.label, row.tokens] for row in self.rows],
            "total": self.total,
            "dropped": list(self.dropped),
            "reused": self.reused,
            "evaluated": self.evaluated,
            "estimate": self.estimate,
            "key": self.key,
        }

    def to_api(self) -> dict[str, Any]:
        """The report as the API returns it (`"hearth"` in a reply; see docs/api.md)."""
        return {
            "prompt_parts": [
                {"part": row.part, "name": row.name, "label": row.label, "tokens": row.tokens}
                for row in self.rows
            ],
            "prompt_tokens": self.total,
            "prompt_reused": self.reused,
            "prompt_evaluated": self.evaluated,
            "dropped": list(self.dropped),
            "estimate": self.estimate,
        }

    @classmethod
    def from_meta(cls, raw: Any) -> PromptReport | None:
        """A report read back from a message's meta; None when it is missing or malformed
        (meta can come from an imported file)."""
        if not isinstance(raw, Mapping):
            return None
        parts, total = raw.get("parts"), raw.get("total")
        if not isinstance(parts, list) or not isinstance(total, int) or not _is_count(total):
            return None
        rows = []
        for item in parts:
            if not (isinstance(item, list) and len(item) == 4 and _is_int(item[3])):
                return None
            rows.append(PartRow(str(item[0]), str(item[1]), str(item[2]), int(item[3])))
        dropped = raw.get("dropped")
        return cls(
            rows=tuple(rows),
            total=int(total),
            dropped=tuple(str(d) for d in dropped) if isinstance(dropped, list) else (),
            reused=int(raw["reused"]) if _is_count(raw.get("reused")) else None,
            evaluated=int(raw["evaluated"]) if _is_count(raw.get("evaluated")) else None,
            estimate=raw.get("estimate") is True,
            key=str(raw.get("key") or ""),
        )


@dataclass(frozen=True)
class Outline:
    """A fitted prompt, with the words that describe it beyond its spans."""

    fitted: FittedPrompt
    mode: Mode
    details: Mapping[str, str]  # part kind -> what is in it ("38 of 40 messages: 1, 4–40")
    dropped: tuple[str, ...] = ()


def measure(
    outline: Outline, count: Counter, *, bos: bool, estimate: bool = False, key: str = ""
) -> PromptReport:
    """Count each part of `outline`'s prompt.

    Args:
        count: the model's token counter, without a cache (one call per part boundary).
        bos: the model adds a start token before the prompt.
    """
    fitted = outline.fitted
    items = itemize(fitted.text, fitted.spans, count, bos=bos, known=fitted.n_tokens)
    rows = tuple(
        PartRow(
            p.part,
            p.name,
            part_label(p.part, p.name, outline.details.get(p.part, ""), outline.mode),
            p.tokens,
        )
        for p in items.parts
    )
    return PromptReport(rows, items.total, outline.dropped, estimate=estimate, key=key)


def record(log: PromptLog, run: Run, outline: Outline, key: str = "") -> PromptReport | None:
    """`measured`, and the prompt's text kept in `log` under `key` (the run's id when not given)."""
    key = key or run.id
    report = measured(run, outline, key)
    if report is not None:
        log.put(key, KeptPrompt(outline.fitted.text, report))
    return report


def measured(run: Run, outline: Outline, key: str = "") -> PromptReport | None:
    """The report of the prompt a finished run was given, with what its KV cache saved.
    None when the run never evaluated its prompt, or the counts cannot be had (a remote
    tokenizer that failed)."""
    finish = run.finish
    if finish is None or run.error is not None or not finish.usage.prompt_tokens:
        return None
    backend = run.backend
    try:
        report = measure(
            outline,
            backend.count_tokens,
            bos=backend.adds_bos,
            estimate=backend.token_count_is_estimate,
            key=key,
        )
    except HearthError:
        return None
    return report.with_usage(finish.usage)


def part_label(part: str, name: str, detail: str, mode: Mode) -> str:
    """ "Lore: Dragon", "Chat history (38 of 40 messages: 1, 4–40)", "Memory"."""
    names = {**_NAMES, **_ADVENTURE_NAMES} if mode == "adventure" else _NAMES
    label = names.get(part, part.replace("_", " ").capitalize())
    if name:
        label = f"{label}: {name}"
    return f"{label} ({detail})" if detail else label


def table(report: PromptReport) -> list[list[str]]:
    """The inspector's table: part, tokens, share of the prompt, then the total."""
    rows = [[row.label, f"{row.tokens:,}", _share(row.tokens, report.total)] for row in report.rows]
    rows.append(["Total", f"{report.total:,}", "100%" if report.total else ""])
    return rows


def summary(report: PromptReport) -> str:
    """One paragraph: the total, what the cache saved, what was left out (Markdown)."""
    words = f"**Prompt: {report.total:,} tokens**"
    if report.rows and report.rows[0].part == BOS_PART:
        words += ", the start token included"
    if report.estimate:
        words += " (estimated: the server has no tokenizer endpoint)"
    if report.reused is not None and report.evaluated is not None:
        words += f" · {report.reused:,} reused from the KV cache · {report.evaluated:,} evaluated"
    if report.dropped:
        words += " · left out to fit: " + "; ".join(report.dropped)
    return words


NEXT = "next"
"""The inspector's choice for the prompt the next run would get (not sent yet)."""
NEXT_LABEL = "Next prompt (not sent yet)"


@dataclass(frozen=True)
class Inspection:
    """What the inspector panel shows: which prompt, its summary, its parts, its text."""

    choices: list[tuple[str, str]]
    selected: str | None
    summary: str  # Markdown
    rows: list[list[str]]
    text: str


def inspection(
    choices: list[tuple[str, str]], selected: str | None, kept: KeptPrompt | None, report: PromptReport | None
) -> Inspection:
    """The panel for `report`, with the text when `kept` holds it."""
    if report is None:
        return Inspection(choices, selected, "Nothing to inspect yet: no prompt has been sent.", [], "")
    words = summary(report)
    if selected == NEXT:
        words += " · not sent yet: the next run would get this prompt"
    if kept is None:
        words += f" · the exact text is kept for the newest {KEPT_PROMPTS} prompts only"
    return Inspection(choices, selected, words, table(report), kept.text if kept else "")


def preview(text: str, limit: int = 50) -> str:
    """The start of a message, on one line, for a choice's label."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def span_words(numbers: Sequence[int]) -> str:
    """ "1, 5–9, 12" for the numbers 1, 5, 6, 7, 8, 9, 12 (sorted)."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)


@dataclass(frozen=True)
class KeptPrompt:
    """A prompt's exact text and its report."""

    text: str
    report: PromptReport


class PromptLog:
    """The newest prompts' full texts, in memory, by key (a run's id, or a story's)."""

    def __init__(self, capacity: int = KEPT_PROMPTS) -> None:
        self._capacity = capacity
        self._kept: OrderedDict[str, KeptPrompt] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, kept: KeptPrompt) -> None:
        with self._lock:
            self._kept[key] = kept
            self._kept.move_to_end(key)
            while len(self._kept) > self._capacity:
                self._kept.popitem(last=False)

    def get(self, key: str) -> KeptPrompt | None:
        with self._lock:
            return self._kept.get(key)


def _share(tokens: int, total: int) -> str:
    return f"{100 * tokens / total:.1f}%" if total else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return _is_int(value) and value >= 0
