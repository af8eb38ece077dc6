"""The engine's explicit view of which tokens sit in a model's KV cache.

llama.cpp keeps the KV cache; this mirror records which token ids it holds, in order,
so the engine can tell how much of a new prompt is reused and how much must be
evaluated. A later context shift edits this view alongside the cache itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReusePlan:
    """How a new prompt relates to what is cached."""

    prompt_tokens: int
    reused: int

    @property
    def evaluated(self) -> int:
        return self.prompt_tokens - self.reused


@dataclass
class KVCacheView:
    """The token ids currently in the KV cache, position by position."""

    tokens: list[int] = field(default_factory=list)

    def plan(self, prompt: Sequence[int]) -> ReusePlan:
        """How many leading prompt tokens are already cached.

        At least one token is always evaluated: the model needs fresh logits for the
        last prompt token even when the whole prompt is cached (llama.cpp does the same).
        """
        reused = common_prefix(self.tokens, prompt)
        if prompt and reused >= len(prompt):
            reused = len(prompt) - 1
        return ReusePlan(prompt_tokens=len(prompt), reused=reused)

    def replace(self, tokens: Sequence[int]) -> None:
        """Record that the cache now holds exactly these tokens."""
        self.tokens = list(tokens)

    def clear(self) -> None:
        self.tokens = []


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """The length of the longest common prefix of two token sequences."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
