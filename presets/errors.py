"""Errors raised while loading prompt formats and sampler presets.

`HearthError` is the root of every error Hearth raises on purpose. It lives here
because `presets` is the bottom layer: every other package may import it.

    HearthError
    ├── InputError             the user asked for what cannot be done as asked (nothing failed)
    └── PresetError            a preset or format file is invalid
        ├── FormatError        a prompt format is malformed or cannot render
        └── SamplerError       a sampler value is out of range or unknown

Messages are plain words a user can act on; `ui/` shows them as they are: an
`InputError` as a warning, any other as an error. Other packages mark their own refusals
(an empty message, nothing picked yet) by inheriting `InputError` as well.
"""

from __future__ import annotations


class HearthError(Exception):
    """Base of all errors meant to be shown to the user."""


class InputError(HearthError):
    """What the user asked for cannot be done as asked: an empty message, nothing picked
    yet, a number out of range. Nothing failed; saying what to do instead is enough."""


class PresetError(HearthError):
    """A preset file or value is invalid."""


class FormatError(PresetError):
    """A prompt format is malformed, unknown, or its template cannot render."""


class SamplerError(PresetError):
    """A sampler parameter is out of range, or a sampler preset is invalid."""
