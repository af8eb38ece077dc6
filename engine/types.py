"""The small typed vocabulary of the engine: requests in, chunks and a finish out."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from presets.samplers import SamplerParams


class FinishReason(StrEnum):
    """Why a generation ended."""

    STOP = "stop"  # end-of-sequence token or a stop string
    LENGTH = "length"  # max new tokens, or the context is full
    CANCELLED = "cancelled"  # the user pressed Stop
    ERROR = "error"  # the backend failed


IMAGE_MARKER = "<__media__>"
"""Where a picture goes in a prompt (llama.cpp's multimodal library's own marker)."""


@dataclass(frozen=True)
class GenerationRequest:
    """A prompt string and how to sample from it; `images` (encoded pictures) stand in
    the prompt where `IMAGE_MARKER`s are, in order, for a backend that `sees_images`."""

    prompt: str
    params: SamplerParams = field(default_factory=SamplerParams)
    stop: tuple[str, ...] = ()
    # A thinking model may think this many tokens before its block is closed for it
    # (`engine.think_budget`); 0: as long as it likes.
    think_budget: int = 0
    thinking_opened: bool = False  # the prompt itself opened the thinking block
    images: tuple[bytes, ...] = ()
    # Steering: a bias added to tokens' logits (token id, bias; -100 bans, +100 forces),
    # a GBNF grammar or a JSON schema (text) the reply must follow.
    logit_bias: tuple[tuple[int, float], ...] = ()
    grammar: str = ""
    json_schema: str = ""
    # Record each token's log probability and this many alternatives (None: record nothing).
    logprobs: int | None = None


@dataclass(frozen=True)
class Chunk:
    """A piece of generated text, and the probabilities of its tokens when they were asked for."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class TokenChoice:
    """A token the model could have written there, and the log of its probability."""

    text: str
    logprob: float
    token: int = -1
    raw: bytes = b""  # the token's own bytes: a character may be split across tokens


@dataclass(frozen=True)
class TokenLogprob:
    """A token the model wrote, how likely it was, and the likeliest tokens it weighed."""

    chosen: TokenChoice
    top: tuple[TokenChoice, ...] = ()


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


FlashAttention = Literal["auto", "on", "off"]
FLASH_ATTENTION: tuple[FlashAttention, ...] = ("auto", "on", "off")
CACHE_TYPES = ("f16", "q8_0", "q4_0")
"""The KV-cache types Hearth offers, by llama.cpp's names (`--cache-type-k`)."""
DEFAULT_BATCH = 512  # llama.cpp's n_batch and n_ubatch


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model: its context, CPU threads, GPU layers and performance settings.

    `None` for `n_ctx` or `n_gpu_layers` means "auto": the application plans them from
    the model and the machine (`catalog.plan`) before a load. Given to the engine
    unplanned, they fall back to 4096 tokens and the CPU. `threads=None` means the
    physical cores; `threads_batch=None` means as many as `threads`.
    """

    n_ctx: int | None = 4096
    threads: int | None = None
    n_gpu_layers: int | None = 0
    threads_batch: int | None = None
    flash_attn: FlashAttention = "auto"
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    n_batch: int = DEFAULT_BATCH
    n_ubatch: int = DEFAULT_BATCH
    # A vision projector (mmproj GGUF) to load with the model, so it can look at pictures.
    mmproj: str = ""

    def uses_flash_attn(self, offloading: bool) -> bool:
        """Whether flash attention is on. "auto" turns it on where it helps, with layers on
        a GPU (`offloading`), and where it is needed: a quantized V cache, which llama.cpp
        refuses without it. "off" with a quantized V cache is overruled the same way."""
        if self.cache_type_v != "f16":
            return True
        return self.flash_attn == "on" or (self.flash_attn == "auto" and offloading)
