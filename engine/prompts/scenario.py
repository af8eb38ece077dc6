"""Scenarios: ready-made starts with `${placeholder}` questions, the AI Dungeon way.

A scenario is a data file (`presets/scenarios/*.json`, schema version 1, validated on
load): a title, an opening prompt, memory, an author's note and story cards. Any of
those texts (card keys too) may hold `${question}` placeholders, such as
`${character name}`. The player answers each question once, however often it appears,
and `Scenario.start` puts the answers in.

Answers are plain text: they are inserted literally, in one pass, so an answer that
itself contains `${…}` or braces is never expanded or evaluated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import presets
from engine.errors import EngineError
from engine.lore import StoryCard
from presets.errors import InputError

SCENARIO_SCHEMA_VERSION = 1
BUILTIN_SCENARIOS_DIR = Path(presets.__file__).resolve().parent / "scenarios"
MAX_SCENARIO_BYTES = 256 * 1024
MAX_TEXT_CHARS = 20_000
MAX_CARDS = 100
MAX_QUESTIONS = 20
MAX_QUESTION_CHARS = 200
MAX_ANSWER_CHARS = 500

Mode = Literal["story", "adventure"]
_PLACEHOLDER = re.compile(r"\$\{([^{}\n]*)\}")
_FIELDS = {"schema_version", "title", "genre", "description", "mode", "prompt", "memory", "authors_note"}
_CARD_FIELDS = {
    "keys",
    "secondary_keys",
    "anti_keys",
    "content",
    "comment",
    "selective",
    "constant",
    "probability",
    "enabled",
}


class ScenarioError(EngineError):
    """A scenario cannot be loaded or started."""


class ScenarioFormatError(ScenarioError):
    """A scenario file is invalid."""


class MissingAnswersError(ScenarioError, InputError):
    """Some of a scenario's questions have no answer."""

    def __init__(self, missing: tuple[str, ...]) -> None:
        listed = ", ".join(f'"{q}"' for q in missing)
        super().__init__(
            f"Answer every question to start: {listed} {'is' if len(missing) == 1 else 'are'} empty."
        )
        self.missing = missing


@dataclass(frozen=True)
class ScenarioStart:
    """A scenario with its answers put in: what a new story starts from."""

    title: str
    mode: Mode
    prompt: str
    memory: str
    authors_note: str
    cards: tuple[StoryCard, ...]


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    genre: str
    description: str
    mode: Mode
    prompt: str
    memory: str
    authors_note: str
    cards: tuple[StoryCard, ...]
    builtin: bool = True

    def _texts(self) -> Iterator[str]:
        yield from (self.prompt, self.memory, self.authors_note)
        for card in self.cards:
            yield from (*card.keys, *card.secondary_keys, *card.anti_keys, card.content, card.comment)

    def questions(self) -> tuple[str, ...]:
        """The placeholder questions in the order they first appear, each once."""
        seen: dict[str, None] = {}
        for text in self._texts():
            for match in _PLACEHOLDER.finditer(text):
                seen.setdefault(match.group(1).strip(), None)
        return tuple(seen)

    def start(self, answers: Mapping[str, str]) -> ScenarioStart:
        """Fill every placeholder with its answer (surrounding whitespace dropped).

        Raises:
            MissingAnswersError: a question has no answer, or only whitespace.
            ScenarioError: an answer is longer than `MAX_ANSWER_CHARS`.
        """
        filled = {q: (answers.get(q) or "").strip() for q in self.questions()}
        missing = tuple(q for q, answer in filled.items() if not answer)
        if missing:
            raise MissingAnswersError(missing)
        for question, answer in filled.items():
            if len(answer) > MAX_ANSWER_CHARS:
                raise ScenarioError(f'The answer to "{question}" is over {MAX_ANSWER_CHARS} characters.')

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: filled[m.group(1).strip()], text)

        def fill_all(items: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(fill(item) for item in items)

        cards = tuple(
            replace(
                card,
                keys=fill_all(card.keys),
                secondary_keys=fill_all(card.secondary_keys),
                anti_keys=fill_all(card.anti_keys),
                content=fill(card.content),
                comment=fill(card.comment),
            )
            for card in self.cards
        )
        return ScenarioStart(
            self.title, self.mode, fill(self.prompt), fill(self.memory), fill(self.authors_note), cards
        )


def load_builtin_scenarios() -> list[Scenario]:
    """The scenarios shipped with Hearth, sorted by title."""
    found = [load_scenario_file(p) for p in sorted(BUILTIN_SCENARIOS_DIR.glob("*.json"))]
    return sorted(found, key=lambda s: s.title.lower())


def load_scenario_file(path: Path, *, builtin: bool = True) -> Scenario:
    """Read and validate one scenario file; its id is the file name without `.json`."""
    try:
        size = path.stat().st_size
        if size <= MAX_SCENARIO_BYTES:
            data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioFormatError(f"{path.name}: the scenario file cannot be read as JSON ({exc}).") from exc
    if size > MAX_SCENARIO_BYTES:
        raise ScenarioFormatError(
            f"{path.name}: a scenario file cannot be over {MAX_SCENARIO_BYTES // 1024} KB."
        )
    return parse_scenario(data, path.stem, builtin=builtin)


def parse_scenario(data: Any, scenario_id: str, *, builtin: bool = False) -> Scenario:
    """Validate a scenario's JSON object. Raises `ScenarioFormatError` naming the problem."""
    where = scenario_id or "scenario"
    if not isinstance(data, Mapping):
        raise ScenarioFormatError(f"{where}: a scenario is a JSON object.")
    unknown = sorted(set(data) - _FIELDS - {"story_cards"})
    if unknown:
        raise ScenarioFormatError(f"{where}: unknown field(s) {', '.join(unknown)}.")
    if data.get("schema_version") != SCENARIO_SCHEMA_VERSION:
        raise ScenarioFormatError(
            f"{where}: schema_version must be {SCENARIO_SCHEMA_VERSION}, not {data.get('schema_version')!r}."
        )
    mode = data.get("mode", "adventure")
    if mode not in ("story", "adventure"):
        raise ScenarioFormatError(f'{where}: mode must be "story" or "adventure", not {mode!r}.')
    cards_raw = data.get("story_cards", [])
    if not isinstance(cards_raw, list) or len(cards_raw) > MAX_CARDS:
        raise ScenarioFormatError(f"{where}: story_cards must be a list of at most {MAX_CARDS} cards.")
    scenario = Scenario(
        id=scenario_id,
        title=_text(data, "title", where, required=True),
        genre=_text(data, "genre", where),
        description=_text(data, "description", where),
        mode=mode,
        prompt=_text(data, "prompt", where, required=True),
        memory=_text(data, "memory", where),
        authors_note=_text(data, "authors_note", where),
        cards=tuple(_card(c, f"{where}: story card {i + 1}") for i, c in enumerate(cards_raw)),
        builtin=builtin,
    )
    _check_placeholders(scenario, where)
    return scenario


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ScenarioFormatError(f"{where}: {key} must be text.")
    if required and not value.strip():
        raise ScenarioFormatError(f"{where}: {key} cannot be empty.")
    if len(value) > MAX_TEXT_CHARS:
        raise ScenarioFormatError(f"{where}: {key} is over {MAX_TEXT_CHARS:,} characters.")
    return value


def _card(data: Any, where: str) -> StoryCard:
    if not isinstance(data, Mapping):
        raise ScenarioFormatError(f"{where} is not a JSON object.")
    unknown = sorted(set(data) - _CARD_FIELDS)
    if unknown:
        raise ScenarioFormatError(f"{where} has unknown field(s) {', '.join(unknown)}.")
    keys, secondary, anti = (_keys(data, name, where) for name in ("keys", "secondary_keys", "anti_keys"))
    # Secondary and anti keys only count on a selective entry; listing them means that.
    defaults = {"selective": bool(secondary or anti), "constant": False, "enabled": True}
    flags = [data.get(name, default) for name, default in defaults.items()]
    if not all(isinstance(flag, bool) for flag in flags):
        raise ScenarioFormatError(f"{where}: selective, constant and enabled must be true or false.")
    probability = data.get("probability", 100)
    if not isinstance(probability, int) or isinstance(probability, bool) or not 0 <= probability <= 100:
        raise ScenarioFormatError(f"{where}: probability must be a whole number from 0 to 100.")
    card = StoryCard(
        keys=keys,
        secondary_keys=secondary,
        anti_keys=anti,
        content=_text(data, "content", where, required=True),
        comment=_text(data, "comment", where),
        selective=flags[0],
        constant=flags[1],
        probability=probability,
        enabled=flags[2],
    )
    if not card.keys and not card.constant:
        raise ScenarioFormatError(f"{where} needs at least one key, or constant: true.")
    return card


def _keys(data: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(k, str) and k.strip() for k in value):
        raise ScenarioFormatError(f"{where}: {name} must be a list of non-empty texts.")
    return tuple(k.strip() for k in value)


def _check_placeholders(scenario: Scenario, where: str) -> None:
    questions = scenario.questions()
    if any(not q for q in questions):
        raise ScenarioFormatError(f"{where}: a placeholder has no question (write ${{your question}}).")
    if any(len(q) > MAX_QUESTION_CHARS for q in questions):
        raise ScenarioFormatError(f"{where}: a placeholder question is over {MAX_QUESTION_CHARS} characters.")
    if len(questions) > MAX_QUESTIONS:
        raise ScenarioFormatError(f"{where}: more than {MAX_QUESTIONS} different questions.")
