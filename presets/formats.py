"""Prompt formats: how a model family expects a conversation to be written.

A format is data (`presets/formats/*.json`), validated when loaded. It knows how to
wrap the system prompt, a user turn and an assistant turn, what to append so the
model answers, and which strings end a reply. It does not decide *which* turns go
into the prompt: that is the engine's prompt assembler.

The leading BOS token is never part of the text: the tokenizer adds it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from presets.errors import FormatError

FORMAT_SCHEMA_VERSION = 1
BUILTIN_FORMATS_DIR = Path(__file__).parent / "formats"
PLAIN_FORMAT_ID = "plain"

Role = Literal["user", "assistant"]
Placement = Literal["own", "first_user"]

_MACRO = re.compile(r"\{\{(user|char)\}\}", re.IGNORECASE)


@dataclass(frozen=True)
class Speakers:
    """The display names that `{{user}}` and `{{char}}` stand for."""

    user: str = "User"
    char: str = "Assistant"

    def expand(self, text: str) -> str:
        """Replace `{{user}}` and `{{char}}` (any case) with the names."""
        return _MACRO.sub(lambda m: self.user if m.group(1).lower() == "user" else self.char, text)


@dataclass(frozen=True)
class Wrap:
    """Text written before and after one message."""

    prefix: str = ""
    suffix: str = ""


@dataclass(frozen=True)
class PromptFormat:
    """One prompt format, as loaded from its data file."""

    id: str
    name: str
    description: str
    system: Wrap
    user: Wrap
    assistant: Wrap
    generation_prompt: str
    stop: tuple[str, ...]
    # "first_user": the system prompt sits inside the first user turn (Llama-2, Mistral, Gemma).
    system_placement: Placement = "own"
    default_system: str = ""
    # Text that opens every prompt, system prompt or not (GLM-4's "[gMASK]<sop>").
    start: str = ""
    template_markers: tuple[str, ...] = ()
    name_patterns: tuple[str, ...] = ()
    builtin: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def head(self, system: str, speakers: Speakers) -> str:
        """The byte-stable start of the prompt: the format's start and the wrapped system prompt."""
        if not system:
            return self.start
        wrapped = self.system.prefix + system + self.system.suffix
        if self.system_placement == "first_user":
            wrapped = self.user.prefix + wrapped
        return self.start + speakers.expand(wrapped)

    def turn(self, role: Role, text: str, speakers: Speakers, *, after_head: bool = False) -> str:
        """One finished message, wrapped.

        `after_head` is true for the first message right after a non-empty head. Formats
        that put the system prompt inside the first user turn then skip that turn's
        prefix, or close the open user turn before an assistant message.
        """
        merged = after_head and self.system_placement == "first_user"
        if role == "user":
            prefix = "" if merged else self.user.prefix
            return speakers.expand(prefix) + text + speakers.expand(self.user.suffix)
        opening = self.user.suffix if merged else ""
        wrap = self.assistant
        return speakers.expand(opening + wrap.prefix) + text + speakers.expand(wrap.suffix)

    def open_turn(self, role: Role, partial: str, speakers: Speakers) -> str:
        """An unfinished message the model should continue (continue, impersonate)."""
        wrap = self.user if role == "user" else self.assistant
        return speakers.expand(wrap.prefix) + partial

    def generation_prefix(self, speakers: Speakers, *, after_head: bool = False) -> str:
        """What follows the last message so the model writes the assistant's reply."""
        opening = self.user.suffix if after_head and self.system_placement == "first_user" else ""
        return speakers.expand(opening + self.generation_prompt)

    def stop_strings(self, speakers: Speakers) -> tuple[str, ...]:
        """The strings that end a reply, with names filled in."""
        return tuple(speakers.expand(s) for s in self.stop)

    def matches_template(self, template: str) -> bool:
        """True if a GGUF chat template contains every marker of this format."""
        return bool(self.template_markers) and all(m in template for m in self.template_markers)

    def matches_name(self, model_name: str) -> bool:
        """True if a model file or repo name matches one of this format's patterns."""
        lowered = model_name.lower()
        return any(re.search(p, lowered) for p in self.name_patterns)


_REQUIRED = ("schema_version", "id", "name", "system", "user", "assistant", "generation_prompt", "stop")
_OPTIONAL = ("description", "system_placement", "default_system", "start", "detect")


def parse_format(raw: Mapping[str, Any], *, source: str, builtin: bool) -> PromptFormat:
    """Validate one format mapping and build it.

    Raises:
        FormatError: naming the source and the first problem found.
    """
    if not isinstance(raw, Mapping):
        raise FormatError(f"{source}: a prompt format must be a JSON object.")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise FormatError(f"{source}: missing {', '.join(missing)}.")
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise FormatError(f"{source}: unknown field {', '.join(unknown)}.")
    if raw["schema_version"] != FORMAT_SCHEMA_VERSION:
        raise FormatError(
            f"{source}: schema_version {raw['schema_version']!r} is not supported "
            f"(expected {FORMAT_SCHEMA_VERSION})."
        )
    fid = _text(raw, "id", source)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", fid):
        raise FormatError(f"{source}: id {fid!r} must be lowercase letters, digits, '.', '_' or '-'.")
    placement = raw.get("system_placement", "own")
    if placement not in ("own", "first_user"):
        raise FormatError(f"{source}: system_placement must be 'own' or 'first_user'.")
    if raw.get("start") and placement != "own":
        # A folded system prompt is found by the head being non-empty: a start would fool that.
        raise FormatError(f"{source}: a start is only for formats whose system prompt has its own turn.")
    stop = raw["stop"]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise FormatError(f"{source}: stop must be a list of non-empty strings.")
    detect = raw.get("detect", {})
    if not isinstance(detect, Mapping) or set(detect) - {"template_markers", "name_patterns"}:
        raise FormatError(f"{source}: detect may only hold template_markers and name_patterns.")
    patterns = _strings(detect.get("name_patterns", []), "detect.name_patterns", source)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise FormatError(f"{source}: name pattern {pattern!r} is not a valid regex: {exc}.") from exc
    return PromptFormat(
        id=fid,
        name=_text(raw, "name", source),
        description=str(raw.get("description", "")),
        system=_wrap(raw, "system", source),
        user=_wrap(raw, "user", source),
        assistant=_wrap(raw, "assistant", source),
        generation_prompt=_text(raw, "generation_prompt", source, allow_empty=True),
        stop=tuple(stop),
        system_placement=placement,
        default_system=str(raw.get("default_system", "")),
        start=str(raw.get("start", "")),
        template_markers=tuple(_strings(detect.get("template_markers", []), "detect", source)),
        name_patterns=tuple(patterns),
        builtin=builtin,
    )


def load_format_file(path: Path, *, builtin: bool = False) -> PromptFormat:
    """Read and validate one format file.

    Raises:
        FormatError: the file is unreadable, not JSON, or not a valid format.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"Could not read prompt format {path.name}: {exc}.") from exc
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path.name} is not valid JSON (line {exc.lineno}).") from exc
    return parse_format(raw, source=path.name, builtin=builtin)


def load_formats(directories: Iterable[Path]) -> dict[str, PromptFormat]:
    """Load every `*.json` format from the directories, in order; later ids win.

    The first directory holds the built-ins; user folders may add or override formats.
    """
    formats: dict[str, PromptFormat] = {}
    for index, directory in enumerate(directories):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.json")):
            fmt = load_format_file(path, builtin=index == 0)
            formats[fmt.id] = fmt
    if PLAIN_FORMAT_ID not in formats:
        raise FormatError(f"The built-in '{PLAIN_FORMAT_ID}' transcript format is missing.")
    return formats


def load_builtin_formats() -> dict[str, PromptFormat]:
    """The formats that ship with Hearth."""
    return load_formats([BUILTIN_FORMATS_DIR])


def _wrap(raw: Mapping[str, Any], key: str, source: str) -> Wrap:
    value = raw[key]
    if not isinstance(value, Mapping) or set(value) - {"prefix", "suffix"}:
        raise FormatError(f"{source}: {key} must be an object with prefix and suffix.")
    prefix, suffix = value.get("prefix", ""), value.get("suffix", "")
    if not isinstance(prefix, str) or not isinstance(suffix, str):
        raise FormatError(f"{source}: {key}.prefix and {key}.suffix must be strings.")
    return Wrap(prefix, suffix)


def _text(raw: Mapping[str, Any], key: str, source: str, *, allow_empty: bool = False) -> str:
    value = raw[key]
    if not isinstance(value, str) or (not value and not allow_empty):
        raise FormatError(f"{source}: {key} must be a{'' if allow_empty else ' non-empty'} string.")
    return value


def _strings(value: Any, key: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise FormatError(f"{source}: {key} must be a list of non-empty strings.")
    return list(value)
