"""Following a run from asyncio: its text as it grows, its end, and a client that left.

A `Run` generates on the model's worker thread; the API's handlers run on the event
loop. They poll the run's text (it only ever grows, and it never holds a stop string
or the start of one) and are woken the moment it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from engine.errors import GenerationError
from engine.run import Run
from engine.types import Finish

STREAM_INTERVAL = 0.05  # seconds between looks at a streaming run's text
DISCONNECT_INTERVAL = 0.5  # seconds between checks that a waiting client is still there


class RunEnd:
    """An asyncio event set when `run` ends (after its callbacks)."""

    def __init__(self, run: Run) -> None:
        self._loop = asyncio.get_running_loop()
        self._ended = asyncio.Event()
        run.on_done(self._wake)

    def _wake(self, _run: Run) -> None:
        # Called on the worker thread. If the loop has closed, nobody is waiting.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._ended.set)

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; return whether the run has ended."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), timeout)
        return self._ended.is_set()


async def text_deltas(run: Run, interval: float = STREAM_INTERVAL) -> AsyncIterator[str]:
    """The text the run adds, piece by piece, until it ends."""
    end = RunEnd(run)
    sent = 0
    while True:
        ended = end.ended
        text = run.text
        if len(text) > sent:
            yield text[sent:]
            sent = len(text)
        if ended:
            return
        await end.wait(interval)


async def wait_for_run(run: Run, client_left: Callable[[], Awaitable[bool]]) -> bool:
    """Wait for `run` to end. If the client goes away first, stop the run and return False."""
    end = RunEnd(run)
    while not await end.wait(DISCONNECT_INTERVAL):
        if await client_left():
            run.stop()
            return False
    return True


def run_finish(run: Run) -> Finish:
    """The finish of a run that has ended (its done callbacks may still be running).

    Raises:
        GenerationError: the model failed while generating.
    """
    if run.error is not None:
        raise GenerationError(f"The model failed while generating: {run.error}") from run.error
    if run.finish is None:
        raise GenerationError("The generation ended without saying why.")
    return run.finish


class ReplyTrim:
    """Streams a chat reply trimmed the way `clean_reply` trims a whole one.

    Leading whitespace is dropped; trailing whitespace is held until more text follows
    it, and dropped if nothing does. The pieces it releases add up to `text.strip()`.
    """

    def __init__(self) -> None:
        self._started = False
        self._held = ""

    def feed(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        text = self._held + text
        body = text.rstrip()
        self._held = text[len(body) :]
        return body


class RunStream(StreamingResponse):
    """A Server-Sent Events response that stops its run when the response ends.

    The response ends early when the client disconnects: Starlette then cancels the
    stream, and the run (still generating, or still queued) is stopped so the model is
    free for the next request.
    """

    def __init__(self, events: AsyncIterator[bytes], run: Run) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if not self.run.done:
                self.run.stop()
