"""Prompt formats and sampler presets: data files plus the loaders that validate them."""

from presets.errors import FormatError, HearthError, PresetError, SamplerError
from presets.formats import (
    PLAIN_FORMAT_ID,
    PromptFormat,
    Speakers,
    Wrap,
    load_builtin_formats,
    load_format_file,
    load_formats,
    parse_format,
)
from presets.samplers import (
    DEFAULT_PRESET,
    RANGES,
    SamplerParams,
    SamplerPreset,
    load_builtin_presets,
    parse_preset,
    preset_to_dict,
)

__all__ = [
    "DEFAULT_PRESET",
    "PLAIN_FORMAT_ID",
    "RANGES",
    "FormatError",
    "HearthError",
    "PresetError",
    "PromptFormat",
    "SamplerError",
    "SamplerParams",
    "SamplerPreset",
    "Speakers",
    "Wrap",
    "load_builtin_formats",
    "load_builtin_presets",
    "load_format_file",
    "load_formats",
    "parse_format",
    "parse_preset",
    "preset_to_dict",
]
