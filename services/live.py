"""Replies the page follows over a channel of their own, not Gradio's event stream.

Each update Gradio streams costs the page about 30 ms of work on a busy page, whatever
its size: Gradio refreshes the loading state of every component the page has used, not
only of the one that changed (6.31). On a two-core machine that work comes out of the
model's own threads, and four updates a second cost a seventh of the speed the user
sees (`bench/browser_stream.py`).

So a streaming handler hands Gradio one update with a marker (`marker`), registers the
run here, and hands Gradio the final text when the run ends. The page's script sees the
marker, opens `/hearth/live/<token>` (an event stream, `api/live.py`), and writes each
text it receives into the marked element, or into the text box the marker names. A
token is unguessable and names one run; a finished run can be followed for a minute.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from engine.run import Run
from services.run_stream import STREAM_INTERVAL, run_texts

KEEP_FINISHED = 60.0
"""Seconds a finished run can still be followed: the page may ask after it ended."""
MOST_FOLLOWED = 64
"""Runs kept at once; the oldest finished ones go first."""
LIVE_PATH = "hearth/live/"
"""Where the page follows a run, relative to the page."""

Render = Callable[[str], str]


@dataclass
class Followed:
    """A run the page follows, and how its text is shown (`render(run.text)`)."""

    run: Run
    render: Render
    plain: bool = False  # plain text, which may be sent as what grew; else HTML, whole
    finished: float | None = None  # monotonic time the run ended


@dataclass
class LiveRuns:
    """The runs pages follow, by token."""

    _runs: dict[str, Followed] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def follow(self, run: Run, render: Render, *, plain: bool = False) -> str:
        """Register `run`, shown as `render(run.text)`: HTML, or with `plain` plain text;
        the token the page follows it by."""
        token = secrets.token_urlsafe(18)
        followed = Followed(run, render, plain)
        with self._lock:
            self._prune(time.monotonic(), room=1)
            self._runs[token] = followed

        def ended(_run: Run) -> None:
            followed.finished = time.monotonic()

        run.on_done(ended)
        return token

    def get(self, token: str) -> Followed | None:
        with self._lock:
            self._prune(time.monotonic())
            return self._runs.get(token)

    def _prune(self, now: float, room: int = 0) -> None:
        """Let go of runs that ended a while ago, and of the oldest ended ones past the
        limit, leaving `room` for more."""
        stale = [t for t, f in self._runs.items() if f.finished and now - f.finished > KEEP_FINISHED]
        for token in stale:
            del self._runs[token]
        overflow = len(self._runs) + room - MOST_FOLLOWED
        if overflow > 0:
            ended = sorted((f.finished, t) for t, f in self._runs.items() if f.finished)
            for _, token in ended[:overflow]:
                del self._runs[token]


async def shown_texts(followed: Followed, interval: float = STREAM_INTERVAL) -> AsyncIterator[str]:
    """What the page shows as the run grows, at most once per `interval`; the last is
    the finished run's, also for a run that had ended before it was asked for."""
    last = None
    async for text in run_texts(followed.run, interval):
        last = followed.render(text)
        yield last
    final = followed.render(followed.run.text)
    if final != last:
        yield final


async def finished(run: Run) -> None:
    """Wait for `run` to end (after its callbacks have saved what it wrote)."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def wake(_run: Run) -> None:
        loop.call_soon_threadsafe(done.set)

    run.on_done(wake)
    await done.wait()


def marker(token: str, body: str = "", *, into: str = "", tag: str = "span", classes: str = "") -> str:
    """An element the page's script follows `token` into: its own content, or with
    `into`, the text box inside the element with that id. Classes, not data
    attributes, carry both, as Gradio's sanitizer keeps classes."""
    names = [f"hearth-run-{token}", f"hearth-into-{into}" if into else "", classes]
    return f'<{tag} class="{" ".join(n for n in names if n)}">{body}</{tag}>'
