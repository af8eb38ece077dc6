"""Errors of the legacy GGML import, under the catalog's `ConversionError` branch.

    ConversionError (catalog.errors)
    ├── LegacyFileDamagedError        the header or tensor table is impossible
    │   └── LegacyFileTruncatedError  the file ends before its last tensor does
    ├── ConversionCancelledError      the user cancelled; nothing was written
    └── UnsupportedLegacyModelError (catalog.errors)
        ├── NotALegacyModelError      not a GGML-family model file at all
        └── LegacyRefusalError        a known kind that cannot convert (`kind` says which)

They live beside the converter rather than in `catalog/errors.py` so the import
stays one folder; every one is a `ConversionError`, which is what callers catch.
"""

from __future__ import annotations

from catalog.errors import ConversionError, UnsupportedLegacyModelError


class LegacyFileDamagedError(ConversionError):
    """The file starts like a GGML model but its header or tensor records make no sense."""


class LegacyFileTruncatedError(LegacyFileDamagedError):
    """The file stops before the data it announces; usually an interrupted download."""


class ConversionCancelledError(ConversionError):
    """The conversion was cancelled; no output file was left behind."""


class NotALegacyModelError(UnsupportedLegacyModelError):
    """The file does not start with a GGML, GGMF, GGJT or GGUF signature."""


class LegacyRefusalError(UnsupportedLegacyModelError):
    """A recognised legacy file that cannot be converted; `kind` names the reason."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind
