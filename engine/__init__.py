"""The engine: backends, prompt assembly, context fitting and runs. No UI code here."""

from engine.backend import Backend
from engine.chat_prompt import Turn, chat_parts, clean_reply, system_text
from engine.errors import (
    ContextOverflowError,
    CorruptModelError,
    EngineError,
    GenerationError,
    LegacyGGMLError,
    ModelLoadError,
    ModelNotFoundError,
    NoModelLoadedError,
    NotGGUFError,
    RemoteAuthError,
    RemoteConnectError,
    RemoteEngineError,
)
from engine.fake import FakeBackend
from engine.gguf_meta import model_info, read_header, sniff_container
from engine.kvcache import KVCacheView
from engine.manager import ModelManager, llama_factory
from engine.prompt import Block, FittedPrompt, Injection, PromptParts, fit_prompt
from engine.run import Run
from engine.stops import StopFilter, trim_at_stops
from engine.types import (
    Chunk,
    Finish,
    FinishReason,
    GenerationRequest,
    LoadOptions,
    ModelInfo,
    Usage,
)

__all__ = [
    "Backend",
    "Block",
    "Chunk",
    "ContextOverflowError",
    "CorruptModelError",
    "EngineError",
    "FakeBackend",
    "Finish",
    "FinishReason",
    "FittedPrompt",
    "GenerationError",
    "GenerationRequest",
    "Injection",
    "KVCacheView",
    "LegacyGGMLError",
    "LoadOptions",
    "ModelInfo",
    "ModelLoadError",
    "ModelManager",
    "ModelNotFoundError",
    "NoModelLoadedError",
    "NotGGUFError",
    "PromptParts",
    "RemoteAuthError",
    "RemoteConnectError",
    "RemoteEngineError",
    "Run",
    "StopFilter",
    "Turn",
    "Usage",
    "chat_parts",
    "clean_reply",
    "fit_prompt",
    "llama_factory",
    "model_info",
    "read_header",
    "sniff_container",
    "system_text",
    "trim_at_stops",
]
