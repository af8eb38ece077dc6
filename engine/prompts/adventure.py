"""Adventure input, the AI Dungeon way: Do, Say and Story.

- **Do** "open the door" becomes `> You open the door.` First person outside quotes turns
  into second person (I → you, my → your, I'm → you're, I am → you are, I was → you were…);
  a verb after "I" keeps its form, since "you" takes the same form except for "be".
- **Say** "hello" becomes `> You say "Hello."`
- **Story** text is narration and goes into the story as it was typed.

An action is one line: newlines inside it become spaces (a newline would end the `>`
line the model sees). The model is kept from writing the player's next move by the stop
strings `ADVENTURE_STOPS`, and `trim_reply` cuts a reply where a new `>` line begins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from engine.errors import EngineError
from presets.errors import InputError

ADVENTURE_STOPS: tuple[str, ...] = ("\n>", "\n> ")
"""Stop strings for adventure replies (Lite stops on "\\n> "; "\\n>" also catches ">You")."""

_QUOTED = re.compile(r"“[^”]*(?:”|$)|\"[^\"]*(?:\"|$)")
_FIRST_PERSON = re.compile(
    r"\b(?:I\s+am|I\s+was|am\s+I|was\s+I|I['’](?:m|ve|ll|d)|I|me|my|mine|myself)\b", re.IGNORECASE
)
_SECOND_PERSON = {
    "i am": "you are",
    "i was": "you were",
    "am i": "are you",
    "was i": "were you",
    "i'm": "you're",
    "i've": "you've",
    "i'll": "you'll",
    "i'd": "you'd",
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
}
_YOU_WORDS = {"you", "you're", "you've", "you'll", "you'd", "your", "yours", "yourself"}
# "mine" after these is the noun ("the old mine"), not the pronoun.
_DETERMINERS = {
    "a",
    "an",
    "the",
    "this",
    "that",
    "these",
    "those",
    "old",
    "gold",
    "coal",
    "abandoned",
    "silver",
}
_SAY_PREFIX = re.compile(r"^(?:you|i)\s+say\b[\s,:]*", re.IGNORECASE)
_SENTENCE_END = ".!?…"
_CLOSERS = "\"”’')]"
_OPENERS = '"“'
_NEXT_ACTION = re.compile(r"\n[ \t]*>")


class InputKind(StrEnum):
    DO = "do"
    SAY = "say"
    STORY = "story"


class EmptyActionError(EngineError, InputError):
    """The player sent an empty Do, Say or Story input."""


@dataclass(frozen=True)
class PlayerInput:
    """One player input, ready for the story.

    `line` is what the player did, for display ("You open the door.", or the narration);
    `text` is what to append to the story: for Do and Say the `>` line with the blank
    lines around it, for Story the text exactly as typed.
    """

    kind: InputKind
    line: str
    text: str


def player_input(kind: InputKind, raw: str, *, preceding: str = "") -> PlayerInput:
    """Turn what the player typed into story text.

    Args:
        kind: Do, Say or Story.
        raw: what the player typed.
        preceding: the story so far (only its end matters), so the `>` line is set off
            by exactly one blank line, and not at all at the very start.

    Raises:
        EmptyActionError: `raw` is empty or only whitespace.
    """
    if kind is InputKind.STORY:
        if not raw.strip():
            raise EmptyActionError("Type some narration first: an empty Story input adds nothing.")
        return PlayerInput(kind, raw.strip(), raw)
    line = do_line(raw) if kind is InputKind.DO else say_line(raw)
    return PlayerInput(kind, line, f"{_separator(preceding)}> {line}\n\n")


def do_line(raw: str) -> str:
    """ "open the door" → "You open the door." (see the module docstring)."""
    text = _one_line(raw)
    if not text:
        raise EmptyActionError("Type what you do first: an empty action does nothing.")
    text = second_person(text)
    # A line that opens with dialogue stands as it is; otherwise it needs "You" as its subject.
    if text[0] not in _OPENERS and _first_word(text) not in _YOU_WORDS:
        text = "You " + _lower_first_word(text)
    return _end_sentence(_capitalise(text))


def say_line(raw: str) -> str:
    """ "hello" → 'You say "Hello."' Quotes already around the words are not doubled."""
    text = _SAY_PREFIX.sub("", _one_line(raw), count=1)
    if len(text) >= 2 and text[0] in _OPENERS and text[-1] in '"”':
        inner = text[1:-1].strip()
        if not any(q in inner for q in '"“”'):
            text = inner
    if not text:
        raise EmptyActionError("Type what you say first: there are no words to say.")
    return f'You say "{_end_sentence(_capitalise(text))}"'


def second_person(text: str) -> str:
    """Rewrite first person as second person everywhere outside double quotes."""
    quoted = [m.span() for m in _QUOTED.finditer(text)]

    def swap(match: re.Match[str]) -> str:
        start, word = match.start(), match.group(0)
        if any(lo <= start < hi for lo, hi in quoted):
            return word
        key = re.sub(r"\s+", " ", word.lower().replace("’", "'"))
        if key == "mine" and _previous_word(text, start) in _DETERMINERS:
            return word
        new = _SECOND_PERSON[key]
        if "’" in word:
            new = new.replace("'", "’")
        if len(word) > 1 and word.isupper():
            return new.upper()
        if _starts_sentence(text, start) or (word[0].isupper() and key[0] != "i"):
            return new[0].upper() + new[1:]
        return new

    return _FIRST_PERSON.sub(swap, text)


def trim_reply(reply: str) -> str:
    """Cut a reply where the model starts writing the player's next action (a line that
    begins with `>`), dropping the whitespace before the cut. A reply without one is
    returned as it is; one that is only whitespace adds nothing, so it is ""."""
    if not reply.strip() or reply.lstrip().startswith(">"):
        return ""
    match = _NEXT_ACTION.search(reply)
    return reply if match is None else reply[: match.start()].rstrip()


def _separator(preceding: str) -> str:
    if not preceding or preceding.endswith("\n\n"):
        return ""
    return "\n" if preceding.endswith("\n") else "\n\n"


def _one_line(raw: str) -> str:
    """Whitespace runs (newlines too) become single spaces; leading `>` marks go."""
    return " ".join(raw.split()).lstrip("> ").strip()


def _first_word(text: str) -> str:
    match = re.match(r"[\w'’]+", text)
    return match.group(0).lower().replace("’", "'") if match else ""


def _lower_first_word(text: str) -> str:
    """Lower-case a capitalised first word ("Open" → "open"), leaving "NASA" and "I"."""
    word = _first_word(text)
    original = text[: len(word)]
    if len(original) > 1 and original[0].isupper() and not original[1:].isupper():
        return text[0].lower() + text[1:]
    return text


def _capitalise(text: str) -> str:
    """Upper-case the first letter, after any opening quotes or brackets."""
    for i, char in enumerate(text):
        if char.isalpha():
            return text[:i] + char.upper() + text[i + 1 :]
        if char not in "\"“'‘([":
            return text
    return text


def _end_sentence(text: str) -> str:
    """Add a final period unless the text already ends a sentence (also inside a closing
    quote: `"Run!"`); a trailing comma, semicolon or colon becomes the period."""
    text = text.rstrip()
    core = text.rstrip(_CLOSERS)
    if core and core[-1] in _SENTENCE_END + "—":
        return text
    if text and text[-1] in ",;:":
        return text[:-1].rstrip() + "."
    return text + "."


def _starts_sentence(text: str, start: int) -> bool:
    before = text[:start].rstrip().rstrip(_CLOSERS)
    return not before or before[-1] in _SENTENCE_END


def _previous_word(text: str, start: int) -> str:
    words = re.findall(r"[\w'’]+", text[:start])
    return words[-1].lower() if words else ""
