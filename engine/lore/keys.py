"""Lorebook key matching and V3 decorators.

Plain keys match as SillyTavern matches them: case-folded unless case-sensitive, and,
with whole-word matching on (the default), a one-word key must not touch a letter,
digit or underscore on either side, while a key of several words matches as a
substring. Like SillyTavern, the word boundary is ASCII-only, so a key in a language
written without spaces (Japanese, Chinese, Thai) still matches inside a sentence.

A plain key written `/pattern/flags` is a regex (SillyTavern's rule), and so is every
key of a V3 entry with `use_regex`. Regexes come from cards, so they are untrusted:
a pattern longer than `MAX_PATTERN_CHARS`, or whose counted repeats multiply past
`MAX_REPEAT_PRODUCT`, is refused; a search reads at most the last `MAX_REGEX_INPUT`
characters and stops after a timeout; and after `MAX_TIMEOUTS` timeouts in one scan
no further regex is tried. A refused, invalid or timed-out pattern does not match,
and says why in a warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import regex

from engine.lore.model import LoreRole

__all__ = [
    "MAX_PATTERN_CHARS",
    "MAX_REGEX_INPUT",
    "MAX_REPEAT_PRODUCT",
    "MAX_TIMEOUTS",
    "Decorators",
    "KeyMatcher",
    "ScanText",
    "split_decorators",
]

MAX_PATTERN_CHARS = 1_000
MAX_REGEX_INPUT = 20_000
MAX_REPEAT_PRODUCT = 10_000
MAX_TIMEOUTS = 5

_ST_REGEX = re.compile(r"/(.+)/([gimsuy]*)", re.DOTALL)
_REPEAT = re.compile(r"\{(\d*)(?:,(\d*))?\}")
_ST_FLAGS = {"i": regex.IGNORECASE, "s": regex.DOTALL, "m": regex.MULTILINE}
_ROLES: tuple[LoreRole, ...] = ("system", "user", "assistant")


class ScanText:
    """Text to scan, with its case-folded form made once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._folded: str | None = None

    @property
    def folded(self) -> str:
        if self._folded is None:
            self._folded = self.text.casefold()
        return self._folded


@dataclass(frozen=True)
class KeyRules:
    """How an entry's keys match."""

    case_sensitive: bool
    whole_words: bool
    regex: bool


class KeyMatcher:
    """Matches keys against scan text; collects warnings about patterns that cannot run."""

    def __init__(self, *, regex_timeout: float) -> None:
        self._timeout = regex_timeout
        self._timeouts = 0
        self._failed: set[tuple[str, int]] = set()
        self._warnings: dict[str, None] = {}
        self._words: dict[str, re.Pattern[str]] = {}

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(self._warnings)

    def any_match(self, keys: Iterable[str], scan: ScanText, rules: KeyRules, label: str) -> bool:
        """True if one of the keys matches."""
        return any(self.matches(key, scan, rules, label) for key in keys)

    def matches(self, key: str, scan: ScanText, rules: KeyRules, label: str) -> bool:
        """True if one key matches the text."""
        key = key.strip()
        if not key:
            return False
        if rules.regex:
            flags = 0 if rules.case_sensitive else regex.IGNORECASE
            return self._search(key, flags, scan.text, label)
        st_regex = _ST_REGEX.fullmatch(key)
        if st_regex is not None:
            flags = sum(_ST_FLAGS.get(letter, 0) for letter in set(st_regex.group(2)))
            return self._search(st_regex.group(1), flags, scan.text, label)
        haystack = scan.text if rules.case_sensitive else scan.folded
        needle = key if rules.case_sensitive else key.casefold()
        if needle not in haystack:
            return False  # the fast check that settles most keys
        if rules.whole_words and len(needle.split()) == 1:
            return self._word_pattern(needle).search(haystack) is not None
        return True

    def _word_pattern(self, word: str) -> re.Pattern[str]:
        pattern = self._words.get(word)
        if pattern is None:
            pattern = self._words[word] = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])")
        return pattern

    def _search(self, pattern: str, flags: int, text: str, label: str) -> bool:
        if (pattern, flags) in self._failed:
            return False
        if self._timeouts >= MAX_TIMEOUTS:
            self._warn(f"Lorebook regex keys were skipped after {MAX_TIMEOUTS} of them took too long.")
            return False
        compiled = _compile(pattern, flags)
        if isinstance(compiled, str):
            return self._fail(pattern, flags, f"{_quote(pattern)} in {label} {compiled}; it never matches.")
        try:
            return compiled.search(text[-MAX_REGEX_INPUT:], timeout=self._timeout) is not None
        except TimeoutError:
            self._timeouts += 1
            return self._fail(pattern, flags, f"{_quote(pattern)} in {label} took too long and was stopped.")

    def _fail(self, pattern: str, flags: int, message: str) -> bool:
        self._failed.add((pattern, flags))
        self._warn(f"The lorebook key {message}")
        return False

    def _warn(self, message: str) -> None:
        self._warnings[message] = None


@lru_cache(maxsize=512)
def _compile(pattern: str, flags: int) -> Any:
    """The compiled pattern, or the reason it was refused (a string)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"is longer than {MAX_PATTERN_CHARS} characters"
    product = 1
    for low, high in _REPEAT.findall(pattern):
        if len(low) > 9 or len(high) > 9:
            return "repeats too many times to check safely"
        product *= max([1, *(int(n) for n in (low, high) if n)])
        if product > MAX_REPEAT_PRODUCT:
            return "repeats too many times to check safely"
    try:
        return regex.compile(pattern, flags)
    except (regex.error, OverflowError, RecursionError, ValueError) as exc:
        return f"is not a valid regular expression ({exc})"


def _quote(pattern: str) -> str:
    shown = pattern if len(pattern) <= 40 else pattern[:37] + "..."
    return f'"{shown}"'


@dataclass(frozen=True)
class Decorators:
    """The V3 decorators Hearth acts on; `seen` names every decorator line found."""

    activate: bool = False
    dont_activate: bool = False
    depth: int | None = None
    scan_depth: int | None = None
    role: LoreRole | None = None
    seen: tuple[str, ...] = ()


def split_decorators(content: str) -> tuple[Decorators, str]:
    """Parse the `@@name value` lines at the top of an entry's content, and strip them.

    A `@@@` line is a fallback for the decorator above it, used only when Hearth does
    not support that one. Supported: `@@activate`, `@@dont_activate`, `@@depth N`,
    `@@scan_depth N` and `@@role system|user|assistant`; others are stripped and ignored.
    """
    if not content.startswith("@@"):
        return Decorators(), content
    lines = content.replace("\r\n", "\n").split("\n")
    groups: list[list[str]] = []
    index = 0
    while index < len(lines) and lines[index].startswith("@@"):
        line = lines[index]
        if line.startswith("@@@") and groups:
            groups[-1].append(line[3:])
        else:
            groups.append([line.lstrip("@")])
        index += 1
    found: dict[str, Any] = {}
    for group in groups:
        for option in group:
            parsed = _decorator(option)
            if parsed is not None:
                found[parsed[0]] = parsed[1]
                break
    seen = tuple(option.split(maxsplit=1)[0] for group in groups for option in group if option.strip())
    body = "\n".join(lines[index:]).lstrip("\n")
    return Decorators(**found, seen=seen), body


def _decorator(line: str) -> tuple[str, Any] | None:
    """(field, value) for a decorator Hearth supports with a valid value, else None."""
    name, _, value = line.strip().partition(" ")
    name, value = name.casefold(), value.strip()
    if name in ("activate", "dont_activate"):
        return name, True
    if name in ("depth", "scan_depth"):
        return (name, int(value)) if value.isdigit() and len(value) < 7 else None
    if name == "role" and value.casefold() in _ROLES:
        return name, value.casefold()
    return None
