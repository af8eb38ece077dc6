"""A `Run` owns one generation from start to finish.

The run streams on its own worker thread, holding the backend's lock, so one model
serves one generation at a time and a run finishes (and persists, through its
`on_done` callbacks) even if the browser that started it goes away. Readers iterate
the released text, throttled or not. `stop()` sets only this run's cancel event.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator

from engine.backend import Backend
from engine.errors import GenerationError
from engine.stops import StopFilter
from engine.types import Chunk, Finish, FinishReason, GenerationRequest, Usage

log = logging.getLogger(__name__)

DoneCallback = Callable[["Run"], None]


class Run:
    """One generation: a prompt, its params, a cancel event, and the text so far."""

    def __init__(self, backend: Backend, request: GenerationRequest, *, owner: str = "") -> None:
        self.id = uuid.uuid4().hex
        self.owner = owner
        self.backend = backend
        self.request = request
        self.text = ""
        self.finish: Finish | None = None
        self.error: BaseException | None = None
        self.callback_errors: list[Exception] = []  # e.g. the reply could not be saved
        self._halt = threading.Event()  # seen by the backend: user Stop or a stop string
        self._cancelled = False
        self._hit_stop_string = False
        self._finished = False  # set before callbacks run
        self._done = threading.Event()  # set after they ran, so waiters see their effects
        self._callbacks: list[DoneCallback] = []
        self._callbacks_lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=f"run-{self.id[:8]}", daemon=True)

    # -- control -----------------------------------------------------------------

    def start(self) -> Run:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask this run, and only this run, to end. Safe to call at any time."""
        self._cancelled = True
        self._halt.set()

    def on_done(self, callback: DoneCallback) -> None:
        """Call `callback(run)` once the run has finished (now, if it already has).

        Callbacks run before `wait()` and `updates()` report the run as done, so a
        caller that waits sees what its callbacks wrote.
        """
        with self._callbacks_lock:
            if not self._finished:
                self._callbacks.append(callback)
                return
        callback(self)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> Finish:
        """Block until the run ends; return its finish.

        Raises:
            GenerationError: the backend failed, or the run did not end in time.
        """
        if not self._done.wait(timeout):
            raise GenerationError("The generation did not finish in time.")
        if self.error is not None:
            raise GenerationError(f"The model failed while generating: {self.error}") from self.error
        assert self.finish is not None
        return self.finish

    # -- reading -----------------------------------------------------------------

    def updates(self, interval: float = 0.1) -> Iterator[str]:
        """Yield the whole text so far at most once per `interval` seconds.

        The last value yielded is the final text. Throttling keeps UI updates cheap
        however fast the model streams.
        """
        shown: str | None = None
        while True:
            finished = self._done.wait(timeout=interval)
            text = self.text
            if text != shown:
                shown = text
                yield text
            if finished:
                return

    # -- worker ------------------------------------------------------------------

    def _work(self) -> None:
        try:
            if not self._wait_for_turn():
                self.finish = Finish(FinishReason.CANCELLED, Usage())
                return
            try:
                self.finish = self._generate()
            finally:
                self.backend.lock.release()
        except Exception as exc:  # the run must always end and report, whatever failed
            log.exception("generation failed")
            self.error = exc
            self.finish = Finish(FinishReason.ERROR, Usage())
        finally:
            self._complete()

    def _wait_for_turn(self) -> bool:
        """Take the model's lock; give up at once if stopped while waiting in line."""
        while not self.backend.lock.acquire(timeout=0.05):
            if self._halt.is_set():
                return False
        if self._halt.is_set():
            self.backend.lock.release()
            return False
        return True

    def _generate(self) -> Finish:
        stops = StopFilter(self.request.stop)
        finish: Finish | None = None
        stream = self.backend.generate(self.request, self._halt)
        try:
            for item in stream:
                if isinstance(item, Finish):
                    finish = item
                    break
                self._append(stops, item)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        self.text += stops.flush()
        if finish is None:
            raise GenerationError("The backend ended without saying why.")
        return self._final_reason(finish)

    def _append(self, stops: StopFilter, chunk: Chunk) -> None:
        self.text += stops.feed(chunk.text)
        if stops.stopped and not self._hit_stop_string:
            self._hit_stop_string = True
            self._halt.set()

    def _final_reason(self, finish: Finish) -> Finish:
        if self._hit_stop_string and not self._cancelled:
            return Finish(FinishReason.STOP, finish.usage)
        if self._cancelled:
            return Finish(FinishReason.CANCELLED, finish.usage)
        return finish

    def _complete(self) -> None:
        with self._callbacks_lock:
            self._finished = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception as exc:  # one failing callback must not hide the others
                log.exception("run callback failed")
                self.callback_errors.append(exc)
        self._done.set()
