"""Cutting a text stream at stop strings.

Backends may or may not honour stop strings themselves, and a stop string may arrive
split across chunks. `StopFilter` holds back any tail that could be the start of a stop
string, so the text it releases never contains one, whatever the backend does.
"""

from __future__ import annotations

from collections.abc import Iterable


class StopFilter:
    """Feed chunks in; get back the text that is safe to show."""

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Add streamed text; return what can be released now.

        After a stop string is seen, `stopped` is true and nothing more is released.
        """
        if self.stopped:
            return ""
        buffer = self._held + text
        cut = self._first_stop(buffer)
        if cut is not None:
            self.stopped = True
            self._held = ""
            return buffer[:cut]
        keep = self._partial_tail(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """Release what was held back once the stream ends without a stop string."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _first_stop(self, buffer: str) -> int | None:
        found = [i for i in (buffer.find(s) for s in self._stops) if i >= 0]
        return min(found) if found else None

    def _partial_tail(self, buffer: str) -> int:
        """The length of the longest suffix of `buffer` that starts some stop string."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
