"""The engine's explicit view of which tokens sit in a model's KV cache, and shifting it.

llama.cpp keeps the KV cache; this mirror records which token ids it holds, position by
position, so the engine can tell how much of a new prompt is reused and how much must
be evaluated.

When a chat outgrows the context, the assembler drops old blocks from just after the
fixed head. A plain prefix match then only reuses the head, and everything after it is
evaluated again (the cost text-generation-webui users see jump to thousands of tokens
a turn). A **context shift** (KoboldCpp's ContextShift) keeps the cached tail instead:

    cached:  P  D  S  Z        P: common prefix, D: dropped span, S: still in the prompt
    prompt:  P  S  Y           Y: the new turn

D and Z are removed from the cache, S slides left to follow P, and only Y is left for
the model to read. S keeps the keys and values it was computed with (it once saw D):
the same approximation KoboldCpp makes, and why the tests compare shifted and fresh
outputs within a tolerance.

S must follow P directly: llama.cpp only accepts new tokens after the last cached
position, so nothing can be evaluated into a gap before S. The assembler keeps the
text around the cut identical so that holds (see `chat_prompt.chat_parts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# Shifting fewer tokens than this is not worth the bookkeeping.
MIN_SHIFTED = 32
_NGRAM = 8


@dataclass(frozen=True)
class ReusePlan:
    """How a new prompt relates to what is cached."""

    prompt_tokens: int
    reused: int

    @property
    def evaluated(self) -> int:
        return self.prompt_tokens - self.reused


@dataclass(frozen=True)
class ShiftPlan:
    """Keep `keep` tokens, drop the cached span up to `segment_start`, and slide the
    next `segment_length` cached tokens left to follow the kept ones."""

    keep: int
    segment_start: int
    segment_length: int

    @property
    def dropped(self) -> int:
        return self.segment_start - self.keep

    @property
    def delta(self) -> int:
        """How far the segment moves (negative: to the left)."""
        return self.keep - self.segment_start

    @property
    def reused(self) -> int:
        """Prompt tokens that need no evaluation once the shift is applied."""
        return self.keep + self.segment_length


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

    def plan_shift(self, prompt: Sequence[int]) -> ShiftPlan | None:
        """A shift that reuses more of the cache than the plain prefix, or None."""
        return plan_shift(self.tokens, prompt)

    def apply_shift(self, plan: ShiftPlan) -> None:
        """Record that `plan` was applied to the cache."""
        segment = self.tokens[plan.segment_start : plan.segment_start + plan.segment_length]
        self.tokens = self.tokens[: plan.keep] + segment

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


def plan_shift(cached: Sequence[int], prompt: Sequence[int]) -> ShiftPlan | None:
    """Find the longest cached run that reappears in the prompt right after the prefix.

    The run must lie after a dropped span in the cache and be at least `MIN_SHIFTED`
    tokens long; otherwise shifting would not beat evaluating again.
    """
    keep = common_prefix(cached, prompt)
    if keep >= len(prompt) - _NGRAM or len(cached) - keep < MIN_SHIFTED:
        return None
    wanted = list(prompt[keep : keep + _NGRAM])
    best: ShiftPlan | None = None
    for position in range(keep + 1, len(cached) - _NGRAM + 1):
        if cached[position] != wanted[0] or list(cached[position : position + _NGRAM]) != wanted:
            continue
        length = common_prefix(cached[position:], prompt[keep:])
        if length >= MIN_SHIFTED and (best is None or length > best.segment_length):
            best = ShiftPlan(keep=keep, segment_start=position, segment_length=length)
    return best
