#!/usr/bin/env python3
"""Turn `pip install -v` output into a few progress lines, keeping the full output in a log.

    pip install -v ... 2>&1 | python3 scripts/compile_progress.py LOG [LABEL]

A compile of llama.cpp prints hundreds of lines over 10-30 minutes. This shows ninja's
`[n/N]` counter at most every PERIOD seconds ("compiling llama.cpp (CUDA)… [57/193]
2m10s"), and a heartbeat with the elapsed time when nothing has counted for HEARTBEAT
seconds (downloading, configuring, linking). Every line goes to LOG. Standard library
only, like scripts/accelerator.py; it always exits 0, so the pipeline's status is pip's.
"""

from __future__ import annotations

import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO

COUNTER = re.compile(r"^\s*\[(\d+)/(\d+)\]")
PERIOD = 10.0
HEARTBEAT = 30.0


def elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Decides what to show; the clock and the output are injected so tests can drive it."""

    def __init__(self, label: str, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.say = say
        self.clock = clock
        self.started = clock()
        self.last_said = self.started
        self.count: tuple[int, int] | None = None

    def line(self, text: str) -> None:
        """One line of pip's output."""
        match = COUNTER.match(text)
        if match is None:
            return
        done, total = int(match.group(1)), int(match.group(2))
        first = self.count is None
        self.count = (done, total)
        if first or done == total or self.clock() - self.last_said >= PERIOD:
            self._say(f"compiling {self.label}… [{done}/{total}]")

    def tick(self) -> None:
        """Called when no line came for a while: a heartbeat, so a long step never looks hung."""
        if self.clock() - self.last_said >= HEARTBEAT:
            where = f" (at [{self.count[0]}/{self.count[1]}])" if self.count else ""
            self._say(f"still working{where}…")

    def _say(self, what: str) -> None:
        now = self.clock()
        self.last_said = now
        self.say(f"    {what} {elapsed(now - self.started)}")


def follow(lines: Iterable[str], log: IO[str], progress: Progress, wait: float = 1.0) -> None:
    """Copy `lines` to `log`, feeding `progress`; tick it whenever `wait` seconds pass quietly."""
    inbox: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for text in lines:
            inbox.put(text)
        inbox.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            text = inbox.get(timeout=wait)
        except queue.Empty:
            progress.tick()
            continue
        if text is None:
            return
        log.write(text)
        log.flush()
        progress.line(text)
        progress.tick()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    label = argv[1] if len(argv) > 1 else "llama.cpp"
    # Never die on an odd byte or a narrow terminal: pip would then fail on a broken pipe.
    for stream in (sys.stdin, sys.stdout):
        stream.reconfigure(errors="replace")  # type: ignore[attr-defined]

    def say(text: str) -> None:
        print(text, flush=True)

    with open(argv[0], "a", encoding="utf-8", errors="replace") as log:
        follow(sys.stdin, log, Progress(label, say))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
