"""The small typed vocabulary of the engine: requests in, chunks and a finish out."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from presets.samplers import SamplerParams


class FinishReason(StrEnum):
    """Why a generation ended."""

    STOP = "stop"  # end-of-sequence token or a stop string
    LENGTH = "length"  # max new tokens, or the context is full
    CANCELLED = "cancelled"  # the user pressed Stop
    ERROR = "error"  # the backend failed


@dataclass(frozen=True)
class GenerationRequest:
    """A prompt string and how to sample from it."""

    prompt: str
    params: SamplerParams = field(default_factory=SamplerParams)
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True)
class Usage:
    """Token counts of one generation.

    `prompt_reused` tokens were already in the KV cache; `prompt_evaluated` had to be
    computed. Their sum is `prompt_tokens`. `prompt_shifted` counts the reused tokens
    that a context shift moved rather than a plain prefix match kept.
    """

    prompt_tokens: int = 0
    prompt_evaluated: int = 0
    prompt_reused: int = 0
    completion_tokens: int = 0
    prompt_shifted: int = 0  # of the reused tokens, how many a context shift kept


@dataclass(frozen=True)
class Finish:
    """The last item of a stream: why it ended and what it cost.

    `seconds` is the wall time from the run taking its turn to its end (set by `Run`).
    """

    reason: FinishReason
    usage: Usage
    seconds: float = 0.0


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a loaded (or loadable) model, read from its GGUF metadata."""

    path: str
    name: str
    architecture: str
    file_size: int
    quant: str
    context_length: int  # what the model was trained for
    chat_template: str = ""
    n_layers: int = 0
    n_embd: int = 0
    n_head: int = 0
    n_head_kv: int = 0
    remote: bool = False  # served by another program over HTTP (path is then its address)


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model: context size, CPU threads and GPU layers."""

    n_ctx: int = 4096
    threads: int = 2
    n_gpu_layers: int = 0
