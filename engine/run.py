"""A `Run` owns one generation from start to finish; a `Worker` runs them in order.

Each loaded model has one `Worker`: a long-lived thread that executes its runs one at
a time. That is the "one queue per loaded model", and it is also what llama.cpp's
OpenMP thread team needs to stay warm: a fresh thread per generation spawns a fresh
team, and competing teams on a small machine cost a third of the speed.

A run finishes (and persists, through its `on_done` callbacks) even if the browser
that started it goes away. Readers iterate the released text, throttled or not.
`stop()` ends only this run; a run stopped while still queued ends at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from enum import Enum

from engine.backend import Backend
from engine.errors import GenerationError
from engine.stops import StopFilter
from engine.think_budget import generate_within_budget
from engine.types import Chunk, Finish, FinishReason, GenerationRequest, TokenLogprob, Usage

log = logging.getLogger(__name__)

DoneCallback = Callable[["Run"], None]


class Worker:
    """One thread that runs jobs in the order they were submitted."""

    def __init__(self, name: str = "generation") -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def close(self) -> None:
        """Finish the queued jobs, then end the thread."""
        self._jobs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:  # a job reports its own failures; the worker must survive
                log.exception("generation job failed")


class _State(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"


class Run:
    """One generation: a prompt, its params, a cancel event, and the text so far."""

    def __init__(self, backend: Backend, request: GenerationRequest, *, owner: str = "") -> None:
        self.id = uuid.uuid4().hex
        self.owner = owner
        self.backend = backend
        self.request = request
        self.text = ""
        self.logprobs: list[TokenLogprob] = []  # when the request asked for them, one per token
        self.finish: Finish | None = None
        self.error: BaseException | None = None
        self.callback_errors: list[Exception] = []  # e.g. the reply could not be saved
        self._halt = threading.Event()  # seen by the backend: user Stop or a stop string
        self._cancelled = False
        self._hit_stop_string = False
        self._state = _State.QUEUED
        self._lock = threading.Lock()
        self._done = threading.Event()  # set after callbacks ran, so waiters see their effects
        self._callbacks: list[DoneCallback] = []

    # -- control -----------------------------------------------------------------

    def start(self, worker: Worker | None = None) -> Run:
        """Queue the run on `worker` (or on a thread of its own)."""
        if worker is None:
            threading.Thread(target=self._work, name=f"run-{self.id[:8]}", daemon=True).start()
        else:
            worker.submit(self._work)
        return self

    def stop(self) -> None:
        """Ask this run, and only this run, to end. Safe to call at any time."""
        self._cancelled = True
        self._halt.set()
        with self._lock:
            queued = self._state is _State.QUEUED
            if queued:
                self._state = _State.FINISHED
        if queued:  # it never started: end it now rather than when its turn comes
            self.finish = Finish(FinishReason.CANCELLED, Usage())
            self._complete()

    def on_done(self, callback: DoneCallback) -> None:
        """Call `callback(run)` once the run has finished (now, if it already has).

        Callbacks run before `wait()` and `updates()` report the run as done, so a
        caller that waits sees what its callbacks wrote.
        """
        with self._lock:
            if not self._done.is_set():
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
        with self._lock:
            if self._state is not _State.QUEUED:
                return  # stopped while waiting in line
            self._state = _State.RUNNING
        began = time.perf_counter()
        try:
            with self.backend.lock:
                finish = self._generate()
            self.finish = replace(finish, seconds=time.perf_counter() - began)
        except Exception as exc:  # the run must always end and report, whatever failed
            log.exception("generation failed")
            self.error = exc
            self.finish = Finish(FinishReason.ERROR, Usage())
        with self._lock:
            self._state = _State.FINISHED
        self._complete()

    def _generate(self) -> Finish:
        if self._halt.is_set():
            return Finish(FinishReason.CANCELLED, Usage())
        stops = StopFilter(self.request.stop)
        finish: Finish | None = None
        stream = generate_within_budget(self.backend, self.request, self._halt)
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
        if not stops.stopped:
            self.logprobs.extend(chunk.logprobs)
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
        while True:
            with self._lock:
                callbacks, self._callbacks = self._callbacks, []
                if not callbacks:
                    self._done.set()
                    return
            for callback in callbacks:
                try:
                    callback(self)
                except Exception as exc:  # one failing callback must not hide the others
                    log.exception("run callback failed")
                    self.callback_errors.append(exc)
