"""A caching token counter, so fitting a long chat tokenizes each message once."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

Counter = Callable[[str], int]  # anything that counts a text's tokens


class TokenCounter:
    """Counts tokens with `tokenize`, remembering the most recent texts it has seen."""

    def __init__(self, tokenize: Callable[[str], list[int]], capacity: int = 50_000) -> None:
        self._tokenize = tokenize
        self._capacity = capacity
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> int:
        if not text:
            return 0
        with self._lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                return self._cache[text]
        count = len(self._tokenize(text))
        with self._lock:
            self._cache[text] = count
            if len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return count
