"""Sampler parameters and named sampler presets.

`SamplerParams` is the one validated bundle of sampling settings that every mode and
every backend uses. Presets are data files (`presets/samplers/*.json`) holding a
name and a partial set of parameters; users save their own through the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from presets.errors import SamplerError

SAMPLER_SCHEMA_VERSION = 1
BUILTIN_SAMPLERS_DIR = Path(__file__).parent / "samplers"
DEFAULT_PRESET = "Balanced"


@dataclass(frozen=True)
class Range:
    """The allowed values of one numeric parameter, with a label for the UI."""

    low: float
    high: float
    step: float
    label: str
    integer: bool = False


# Bounds follow what llama.cpp accepts and what is sensible to expose in a slider.
RANGES: dict[str, Range] = {
    "temperature": Range(0.0, 5.0, 0.05, "Temperature"),
    "top_p": Range(0.0, 1.0, 0.01, "Top-p"),
    "top_k": Range(0, 200, 1, "Top-k (0 = off)", integer=True),
    "min_p": Range(0.0, 1.0, 0.01, "Min-p"),
    "typical_p": Range(0.0, 1.0, 0.01, "Typical-p (1 = off)"),
    "repeat_penalty": Range(1.0, 2.0, 0.01, "Repetition penalty"),
    "repeat_last_n": Range(0, 4096, 16, "Repetition penalty range (tokens)", integer=True),
    "presence_penalty": Range(-2.0, 2.0, 0.05, "Presence penalty"),
    "frequency_penalty": Range(-2.0, 2.0, 0.05, "Frequency penalty"),
    "mirostat_mode": Range(0, 2, 1, "Mirostat mode (0 = off)", integer=True),
    "mirostat_tau": Range(0.0, 10.0, 0.1, "Mirostat tau"),
    "mirostat_eta": Range(0.0, 1.0, 0.01, "Mirostat eta"),
    "seed": Range(-1, 2**31 - 1, 1, "Seed (-1 = random)", integer=True),
    # As wide as llama.cpp's server: the context is the only real limit (the engine stops there).
    "max_new_tokens": Range(1, 131072, 1, "Max new tokens", integer=True),
}


# Text settings: the reply must follow a grammar, or a JSON schema (see `engine.llama`).
TEXT_FIELDS = {"grammar": "GBNF grammar", "json_schema": "JSON schema"}
MAX_TEXT_CHARS = 65_536
CONTROLS = [*RANGES, *TEXT_FIELDS]


@dataclass(frozen=True)
class SamplerParams:
    """Validated sampling settings. Construct through `SamplerParams.from_mapping`."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat_mode: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int = -1
    max_new_tokens: int = 256
    # What the reply must follow, for power users: a GBNF grammar, or a JSON schema (text).
    grammar: str = ""
    json_schema: str = ""

    def __post_init__(self) -> None:
        for name, label in TEXT_FIELDS.items():
            _check_text(label, getattr(self, name), json_object=name == "json_schema")
        for name, bound in RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SamplerError(f"{bound.label} must be a number, not {value!r}.")
            if bound.integer and int(value) != value:
                raise SamplerError(f"{bound.label} must be a whole number, not {value}.")
            if not bound.low <= value <= bound.high:
                raise SamplerError(
                    f"{bound.label} must be between {_fmt(bound.low)} and {_fmt(bound.high)}, "
                    f"not {_fmt(value)}."
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, base: SamplerParams | None = None) -> SamplerParams:
        """Build params from a partial mapping layered over `base` (or the defaults).

        Raises:
            SamplerError: an unknown name, or a value of the wrong type or range.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SamplerError(f"Unknown sampler setting: {', '.join(unknown)}.")
        coerced = {k: _coerce(k, v) for k, v in values.items()}
        return replace(base or cls(), **coerced)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SamplerPreset:
    """A named set of sampler values."""

    name: str
    description: str
    params: SamplerParams
    builtin: bool = True


def parse_preset(raw: Mapping[str, Any], *, source: str, builtin: bool) -> SamplerPreset:
    """Validate a preset mapping (`schema_version`, `name`, `params`, optional `description`).

    Raises:
        SamplerError: naming the source and the problem.
    """
    if not isinstance(raw, Mapping):
        raise SamplerError(f"{source}: a sampler preset must be a JSON object.")
    if raw.get("schema_version") != SAMPLER_SCHEMA_VERSION:
        raise SamplerError(f"{source}: schema_version must be {SAMPLER_SCHEMA_VERSION}.")
    unknown = sorted(set(raw) - {"schema_version", "name", "description", "params"})
    if unknown:
        raise SamplerError(f"{source}: unknown field {', '.join(unknown)}.")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise SamplerError(f"{source}: name must be a non-empty string of at most 64 characters.")
    params = raw.get("params")
    if not isinstance(params, Mapping):
        raise SamplerError(f"{source}: params must be an object.")
    try:
        parsed = SamplerParams.from_mapping(params)
    except SamplerError as exc:
        raise SamplerError(f"{source}: {exc}") from exc
    return SamplerPreset(name.strip(), str(raw.get("description", "")), parsed, builtin)


def load_presets(directory: Path) -> dict[str, SamplerPreset]:
    """Load every `*.json` preset in a directory, keyed by name."""
    presets: dict[str, SamplerPreset] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SamplerError(f"Could not read sampler preset {path.name}: {exc}.") from exc
        preset = parse_preset(raw, source=path.name, builtin=True)
        presets[preset.name] = preset
    if DEFAULT_PRESET not in presets:
        raise SamplerError(f"The built-in '{DEFAULT_PRESET}' sampler preset is missing.")
    return presets


def load_builtin_presets() -> dict[str, SamplerPreset]:
    """The sampler presets that ship with Hearth."""
    return load_presets(BUILTIN_SAMPLERS_DIR)


def preset_to_dict(preset: SamplerPreset) -> dict[str, Any]:
    """The stored shape of a preset (the same shape the data files use)."""
    return {
        "schema_version": SAMPLER_SCHEMA_VERSION,
        "name": preset.name,
        "description": preset.description,
        "params": preset.params.to_dict(),
    }


def ordered_values(params: SamplerParams) -> list[Any]:
    """The values of `params` in the order of `CONTROLS`: the order of the sampler panel's
    sliders, then its grammar and schema boxes, and of the sampler inputs of the app's API
    endpoints."""
    return [getattr(params, name) for name in CONTROLS]


def ordered_names(presets: Iterable[SamplerPreset]) -> list[str]:
    """Built-ins first, in file order, then the user's presets alphabetically."""
    items = list(presets)
    return [p.name for p in items if p.builtin] + sorted(p.name for p in items if not p.builtin)


def _check_text(label: str, value: Any, *, json_object: bool) -> None:
    if not isinstance(value, str):
        raise SamplerError(f"The {label} must be text.")
    if len(value) > MAX_TEXT_CHARS:
        raise SamplerError(f"The {label} is over {MAX_TEXT_CHARS:,} characters.")
    if json_object and value.strip():
        try:
            schema = json.loads(value)
        except ValueError as exc:
            raise SamplerError(f"The {label} is not valid JSON: {exc}.") from exc
        if not isinstance(schema, dict):
            raise SamplerError(f"The {label} must be a JSON object.")


def _coerce(name: str, value: Any) -> Any:
    if name in TEXT_FIELDS:
        return "" if value is None else value
    bound = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SamplerError(f"{bound.label} must be a number, not {value!r}.")
    if bound.integer:
        if int(value) != value:
            raise SamplerError(f"{bound.label} must be a whole number, not {value}.")
        return int(value)
    return float(value)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
