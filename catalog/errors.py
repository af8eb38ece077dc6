"""Errors raised by the catalog, the Hub client and the local library.

HearthError (presets.errors)
└── CatalogError                the catalog or a model file cannot be used
    └── BundledModelError       the bundled model package is missing or broken
"""

from __future__ import annotations

from presets.errors import HearthError


class CatalogError(HearthError):
    """The catalog, the Hub or the model library cannot do what was asked."""


class BundledModelError(CatalogError):
    """The bundled Gemma 3 270M package is not installed or cannot be assembled."""
