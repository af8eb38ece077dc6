"""The backend interface every model engine implements.

A backend is one loaded model. It tokenizes, and it turns a `GenerationRequest` into a
stream of `Chunk`s followed by exactly one `Finish`. It checks a per-run cancel event
between tokens. It is not thread-safe: callers hold `lock` around `generate`, which
`engine.run.Run` does for them.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator

from engine.types import Chunk, Finish, GenerationRequest, ModelInfo


class Backend(ABC):
    """One loaded model that can tokenize and generate."""

    #: True if the backend can remove and shift KV-cache cells (ContextShift).
    can_shift: bool = False
    #: Whether to use the shift when it can (a setting; off means plain prefix reuse).
    shift_enabled: bool = False
    #: True if the model was loaded with a vision projector: a prompt may then hold
    #: `IMAGE_MARKER`s, one for each of the request's `images`.
    sees_images: bool = False

    @property
    def token_count_is_estimate(self) -> bool:
        """True when `tokenize` only estimates (a remote server without a tokenizer)."""
        return False

    def __init__(self, info: ModelInfo, n_ctx: int) -> None:
        self.info = info
        self.n_ctx = n_ctx
        # One generation at a time per loaded model.
        self.lock = threading.Lock()

    @abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` as the model would see it in a prompt (without BOS)."""

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` takes in a prompt."""
        return len(self.tokenize(text))

    @property
    def adds_bos(self) -> bool:
        """True if the backend prepends a BOS token to every prompt."""
        return False

    def special_tokens(self) -> tuple[str, str]:
        """The text of the BOS and EOS tokens ("" when unknown), for chat templates."""
        return "", ""

    @abstractmethod
    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[Chunk | Finish]:
        """Stream the reply to `request`: chunks, then one `Finish`.

        Stops early, with reason CANCELLED, once `cancel` is set.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release the model's memory."""
