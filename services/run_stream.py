"""A run's text as it grows, throttled for the browser."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from engine.run import Run

STREAM_INTERVAL = 0.25
"""Seconds between streamed updates: each update costs the browser a render and the
server some CPU the model's threads would otherwise use."""
FIRST_POLL = 0.02
"""Seconds between looks for the first text: the wait before a reply shows anything is
the delay a user feels most, and a look costs next to nothing."""


async def run_texts(run: Run, interval: float = STREAM_INTERVAL) -> AsyncIterator[str]:
    """The generated text as it grows, at most once per `interval` (the first text as
    soon as it is there), only when it changed.

    Ends as soon as the run does (after its callbacks have saved the result).
    """
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()

    def wake(_run: Run) -> None:
        loop.call_soon_threadsafe(finished.set)

    run.on_done(wake)
    shown = ""
    while not finished.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), timeout=interval if shown else min(interval, FIRST_POLL))
        if run.text != shown:
            shown = run.text
            yield shown
