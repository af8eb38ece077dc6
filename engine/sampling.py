"""What the llama.cpp backend adds to llama.cpp's own sampling, in Python.

- `bias_stage`: a request's logit bias (OpenAI's `logit_bias`: -100 bans a token,
  +100 all but forces it), the first stage of the chain, only when asked for (a Python
  stage costs a copy of the logits on every token);
- `LogprobRecorder`: a token's log probability and the likeliest alternatives, read from
  the raw logits it was sampled from (before any sampler narrows the choice, as OpenAI
  reports them), right after the sampling: llama.cpp still holds them then. Nothing asks
  llama.cpp for the logits of the whole context (`logits_all`), which would cost memory
  and time on every prompt token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from engine.types import TokenChoice, TokenLogprob

Logits = npt.NDArray[np.single]
Stage = Callable[[npt.NDArray[np.intc], Logits], Logits]
MAX_TOP_LOGPROBS = 20  # OpenAI's limit
LIKELY = 1e-4  # weight against the likeliest token's above which an alternative is looked at


def bias_stage(bias: Sequence[tuple[int, float]], n_vocab: int) -> Stage:
    """A stage adding `bias` to the logits of its tokens (ids outside the vocabulary are ignored)."""
    ids = np.array([token for token, _ in bias if 0 <= token < n_vocab], dtype=np.intp)
    values = np.array([value for token, value in bias if 0 <= token < n_vocab], dtype=np.single)

    def apply(_input_ids: npt.NDArray[np.intc], logits: Logits) -> Logits:
        shifted = np.array(logits, copy=True)
        shifted[ids] += values
        return shifted

    return apply


class LogprobRecorder:
    """Reads a token's log probability, and the likeliest alternatives, from the logits it
    was sampled from (`take`, right after the sampling, before the next evaluation)."""

    def __init__(self, top: int, piece: Callable[[int], bytes]) -> None:
        self.top = max(0, min(top, MAX_TOP_LOGPROBS))
        self._piece = piece  # a token's bytes
        self._weights: Logits | None = None  # reused: one vocabulary-sized buffer, not one a token

    def take(self, token: int, logits: Logits) -> TokenLogprob | None:
        if not 0 <= token < len(logits):
            return None
        # A few vectorised passes over the vocabulary (262k tokens for Gemma), in one
        # reused buffer: the peak, each token's weight exp(logit - peak), and their sum,
        # whose log turns a logit into a log probability.
        if self._weights is None or len(self._weights) != len(logits):
            self._weights = np.empty(len(logits), dtype=np.single)
        weights = self._weights
        peak = float(logits.max())
        np.subtract(logits, peak, out=weights)
        np.exp(weights, out=weights)
        log_total = peak + float(np.log(weights.sum(dtype=np.float64)))
        chosen = self._choice(int(token), logits, log_total)
        if not self.top:
            return TokenLogprob(chosen)
        # The alternatives are among the few tokens not far below the peak; a flat
        # distribution has fewer of those than asked for, and is searched whole.
        top = min(self.top, len(weights))
        near = np.flatnonzero(weights > LIKELY)
        if len(near) < top:
            near = np.argpartition(weights, len(weights) - top)[len(weights) - top :]
        elif len(near) > top:
            near = near[np.argpartition(weights[near], len(near) - top)[len(near) - top :]]
        ranked = sorted((int(i) for i in near), key=lambda i: -float(logits[i]))
        return TokenLogprob(chosen, tuple(self._choice(i, logits, log_total) for i in ranked))

    def _choice(self, token: int, logits: Logits, log_total: float) -> TokenChoice:
        raw = self._piece(token)
        logprob = float(logits[token]) - log_total
        return TokenChoice(raw.decode("utf-8", errors="replace"), logprob, token, raw)
