"""Errors raised by the catalog, the Hub client, downloads, the library and GGML import.

HearthError (presets.errors)
└── CatalogError                  the catalog or a model file cannot be used
    ├── BundledModelError         the bundled model package is missing or broken
    ├── CatalogDataError          the catalog data file is invalid
    ├── UnsafeNameError           a repo or file name could escape the models folder
    ├── LibraryError              a local library operation failed
    ├── HubError                  the Hub (or its stand-in) refused or is unreachable
    │   └── OfflineError          offline mode, or no network at all
    ├── DownloadError             a download failed (what is on disk is kept for resume)
    │   ├── ChecksumError         the file's sha256 does not match the Hub's
    │   ├── NotEnoughSpaceError   the disk cannot hold the file
    │   └── DownloadCancelledError  the user cancelled
    └── ConversionError           a legacy GGML file cannot be converted
        └── UnsupportedLegacyModelError  a kind of GGML file that cannot convert at all
"""

from __future__ import annotations

from presets.errors import HearthError


class CatalogError(HearthError):
    """The catalog, the Hub or the model library cannot do what was asked."""


class BundledModelError(CatalogError):
    """The bundled Gemma 3 270M package is not installed or cannot be assembled."""


class CatalogDataError(CatalogError):
    """The catalog data file is malformed."""


class UnsafeNameError(CatalogError):
    """A repository or file name that could escape the models folder."""


class LibraryError(CatalogError):
    """Listing, adding or deleting local models failed."""


class HubError(CatalogError):
    """The Hugging Face Hub refused a request or could not be reached."""


class OfflineError(HubError):
    """Hub access was needed while offline."""


class DownloadError(CatalogError):
    """A download failed; bytes already on disk are kept so it can resume."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the sha256 the Hub published."""


class NotEnoughSpaceError(DownloadError):
    """There is not enough free disk space for the file."""


class DownloadCancelledError(DownloadError):
    """The user cancelled the download."""


class ConversionError(CatalogError):
    """A legacy GGML model could not be converted to GGUF."""


class UnsupportedLegacyModelError(ConversionError):
    """A legacy file of a kind that cannot be converted (too old, wrong architecture...)."""
