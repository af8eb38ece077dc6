"""What the llama.cpp backend adds to llama.cpp's own sampler chain, in Python.

Both run as the first stage of the chain, on the raw logits of the whole vocabulary,
and only when a request asks for them, since a Python stage costs a copy of the logits
on every token:

- `bias_stage`: a request's logit bias (OpenAI's `logit_bias`: -100 bans a token,
  +100 all but forces it);
- `LogprobRecorder`: the log probability of every token the model could write next,
  read before any sampler narrows the choice, as OpenAI reports them. The backend takes
  the record of each token right after the token is sampled, so the two always pair.
  Nothing asks llama.cpp for the logits of the whole context (`logits_all`), which
  would cost memory and time on every prompt token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from engine.types import TokenChoice, TokenLogprob

Logits = npt.NDArray[np.single]
Stage = Callable[[npt.NDArray[np.intc], Logits], Logits]
MAX_TOP_LOGPROBS = 20  # OpenAI's limit


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
    """Records the distribution of each next token; `take` pairs it with the token sampled."""

    def __init__(self, top: int, piece: Callable[[int], bytes]) -> None:
        self.top = max(0, min(top, MAX_TOP_LOGPROBS))
        self._piece = piece  # a token's bytes
        self._last: Logits | None = None

    def __call__(self, _input_ids: npt.NDArray[np.intc], logits: Logits) -> Logits:
        values = logits.astype(np.float64)
        peak = values.max()
        self._last = (values - peak - np.log(np.exp(values - peak).sum())).astype(np.single)
        return logits

    def take(self, token: int) -> TokenLogprob | None:
        """The record for `token`, just sampled from the distribution recorded last."""
        logprobs, self._last = self._last, None
        if logprobs is None or not 0 <= token < len(logprobs):
            return None
        chosen = self._choice(int(token), logprobs)
        if not self.top:
            return TokenLogprob(chosen)
        best = np.argpartition(-logprobs, self.top)[: self.top] if self.top < len(logprobs) else np.arange(
            len(logprobs)
        )
        ranked = sorted((int(i) for i in best), key=lambda i: -float(logprobs[i]))
        return TokenLogprob(chosen, tuple(self._choice(i, logprobs) for i in ranked))

    def _choice(self, token: int, logprobs: Logits) -> TokenChoice:
        raw = self._piece(token)
        return TokenChoice(raw.decode("utf-8", errors="replace"), float(logprobs[token]), token, raw)
