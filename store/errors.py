"""Errors raised by the store.

    HearthError (presets.errors)
    └── StoreError                 reading or writing user data failed
        ├── StoreFullError         the disk is full; the change was not saved
        ├── StoreCorruptError      a data file cannot be parsed
        ├── SchemaTooNewError      the data was written by a newer Hearth
        ├── NotFoundError          no record with that id
        ├── InvalidInputError      a value the user gave cannot be stored as it is (also an InputError)
        ├── CardFormatError        a character card file is invalid (nothing was imported)
        │   └── CardTooLargeError  a card, chunk or archive member is over its size limit
        └── StoryFormatError       a story save file (KoboldAI / Kobold Lite) is invalid

Every write is atomic, so when any of these is raised the previous data is intact.
"""

from __future__ import annotations

from presets.errors import HearthError, InputError


class StoreError(HearthError):
    """User data could not be read or written."""


class StoreFullError(StoreError):
    """The disk is full."""


class StoreCorruptError(StoreError):
    """A data file is damaged."""


class SchemaTooNewError(StoreError):
    """The data directory was written by a newer version of Hearth."""


class NotFoundError(StoreError):
    """No record has that id."""


class InvalidInputError(StoreError, InputError):
    """A value the user gave cannot be stored as it is: an empty message or title, a
    depth that is not a whole number. Shown as a warning: nothing failed."""


class CardFormatError(StoreError):
    """A character card (PNG, JSON, CHARX or YAML) is invalid; nothing was imported."""


class CardTooLargeError(CardFormatError):
    """A card file, PNG chunk or archive member exceeds its size limit."""


class StoryFormatError(StoreError):
    """A KoboldAI or Kobold Lite story save is invalid; nothing was imported."""
