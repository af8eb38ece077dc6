"""A scriptable in-process backend for unit tests and UI development.

`FakeBackend` tokenizes words and punctuation deterministically, keeps the same
explicit KV-cache view as the real backend (so reuse counts behave alike), and replies
with whatever was `enqueue`d, or with a short default reply. `calls` records every
request it saw.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator

from engine.backend import Backend
from engine.kvcache import KVCacheView
from engine.types import IMAGE_MARKER, Chunk, Finish, FinishReason, GenerationRequest, ModelInfo, Usage

_TOKEN = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+")
_VOCAB_SIZE = 32000


def fake_model_info(name: str = "fake-model", context_length: int = 4096) -> ModelInfo:
    return ModelInfo(
        path=f"<{name}>",
        name=name,
        architecture="fake",
        file_size=0,
        quant="none",
        context_length=context_length,
    )


class FakeBackend(Backend):
    """A backend whose replies are scripted.

    Args:
        n_ctx: the context size to report.
        delay: seconds to sleep before each chunk, so tests can press Stop mid-stream.
        default_reply: used when nothing is enqueued.
    """

    def __init__(
        self,
        n_ctx: int = 4096,
        *,
        delay: float = 0.0,
        default_reply: str = "This is a fake reply.",
        info: ModelInfo | None = None,
        sees_images: bool = False,
    ) -> None:
        super().__init__(info or fake_model_info(context_length=n_ctx), n_ctx)
        self.sees_images = sees_images
        self.delay = delay
        self.default_reply = default_reply
        self.calls: list[GenerationRequest] = []
        self.cache = KVCacheView()
        self._queue: deque[list[str]] = deque()
        self.closed = False

    def enqueue(self, chunks: Iterable[str]) -> None:
        """Script the next reply as a list of chunks (one token each)."""
        self._queue.append(list(chunks))

    def tokenize(self, text: str) -> list[int]:
        return [zlib.crc32(piece.encode()) % _VOCAB_SIZE for piece in _TOKEN.findall(text)]

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[Chunk | Finish]:
        self.calls.append(request)
        markers = request.prompt.count(IMAGE_MARKER)
        if request.images and (not self.sees_images or markers != len(request.images)):
            raise ValueError("pictures sent to a model that cannot see them, or not one per marker")
        prompt = self.tokenize(request.prompt)
        if len(prompt) >= self.n_ctx:
            raise ValueError(f"Requested tokens ({len(prompt)}) exceed context window of {self.n_ctx}")
        plan = self.cache.plan(prompt)
        script = self._queue.popleft() if self._queue else _split(self.default_reply)
        produced: list[int] = []
        reason = FinishReason.STOP
        budget = min(request.params.max_new_tokens, self.n_ctx - len(prompt))
        for piece in script:
            if cancel.is_set():
                reason = FinishReason.CANCELLED
                break
            if len(produced) >= budget:
                reason = FinishReason.LENGTH
                break
            if self.delay:
                time.sleep(self.delay)
            produced.extend(self.tokenize(piece) or [0])
            yield Chunk(piece)
        self.cache.replace(prompt + produced)
        usage = Usage(len(prompt), plan.evaluated, plan.reused, len(produced))
        yield Finish(reason, usage)

    def close(self) -> None:
        self.closed = True


def _split(text: str) -> list[str]:
    return _TOKEN.findall(text)
