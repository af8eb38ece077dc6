"""Errors raised by the engine.

    HearthError (presets.errors)
    └── EngineError
        ├── ModelLoadError            a model file cannot be loaded
        │   ├── ModelNotFoundError    no file at that path
        │   ├── NotGGUFError          the file is not a GGUF model at all
        │   ├── LegacyGGMLError       an old GGML/GGMF/GGJT file, which needs converting
        │   ├── CorruptModelError     a GGUF file that is truncated or damaged
        │   └── ModelMemoryError      llama.cpp could not allocate the memory the model needs
        ├── NoModelLoadedError        a generation was asked for with no model loaded (an InputError)
        ├── ContextOverflowError      the fixed parts of a prompt do not fit the context
        └── GenerationError           the backend failed while generating

Messages are plain words a user can act on; `ui/` shows them as they are.
"""

from __future__ import annotations

from presets.errors import HearthError, InputError


class EngineError(HearthError):
    """Base of engine errors."""


class ModelLoadError(EngineError):
    """A model could not be loaded. The previously loaded model stays loaded."""


class ModelNotFoundError(ModelLoadError):
    """There is no model file at the given path."""


class NotGGUFError(ModelLoadError):
    """The file is not a GGUF model."""


class LegacyGGMLError(ModelLoadError):
    """The file is a legacy GGML-family model (GGML, GGMF or GGJT)."""

    def __init__(self, message: str, container: str) -> None:
        super().__init__(message)
        self.container = container


class CorruptModelError(ModelLoadError):
    """The file starts like a GGUF model but is truncated or damaged."""


class ProjectorError(ModelLoadError):
    """The vision projector given with a model cannot be used with it (the model is closed)."""


class ModelMemoryError(ModelLoadError):
    """llama.cpp ran out of memory (GPU or host) while loading: fewer GPU layers or a
    smaller context may fit."""


class NoModelLoadedError(EngineError, InputError):
    """Nothing is loaded to generate with."""


class ContextOverflowError(EngineError):
    """The parts of the prompt that may not be dropped are larger than the context."""


class GenerationError(EngineError):
    """The backend failed during generation."""


# -- remote engines (engine/remote/base.py); the tree above gains:
#    ModelLoadError
#    └── RemoteConnectError        a remote engine cannot be reached, or does not speak the API
#        └── RemoteAuthError       the server wants an API key, or a different one
#    GenerationError
#    └── RemoteEngineError         a connected remote engine failed or went away


class RemoteConnectError(ModelLoadError):
    """A remote engine could not be connected: nothing answered, or not in the API asked for."""


class RemoteAuthError(RemoteConnectError):
    """The remote engine refused the request for want of the right API key."""


class RemoteEngineError(GenerationError):
    """A connected remote engine failed, or stopped answering, while in use."""
