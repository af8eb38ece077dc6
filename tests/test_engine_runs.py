"""Runs, stop strings, cancellation and per-user Stop, on the fake backend."""

from __future__ import annotations

import threading
import time

import pytest

from engine.errors import GenerationError, NoModelLoadedError
from engine.fake import FakeBackend
from engine.kvcache import KVCacheView, common_prefix
from engine.manager import ModelManager
from engine.run import Run
from engine.stops import StopFilter
from engine.types import FinishReason, GenerationRequest
from presets.samplers import SamplerParams


def request(prompt: str = "Hello", stop: tuple[str, ...] = (), max_new: int = 64) -> GenerationRequest:
    return GenerationRequest(prompt, SamplerParams(max_new_tokens=max_new), stop)


# -- stop strings -----------------------------------------------------------------------


def test_stop_filter_holds_back_a_split_stop_string() -> None:
    stops = StopFilter(["\nUser:"])
    released = [stops.feed(piece) for piece in ["Hi", " there", "\nUs", "er:", " more"]]
    assert released == ["Hi", " there", "", "", ""]
    assert stops.stopped


def test_stop_filter_releases_a_false_alarm() -> None:
    stops = StopFilter(["\nUser:"])
    assert stops.feed("a\nUs") == "a"
    assert stops.feed("ually") == "\nUsually"
    assert stops.flush() == ""


def test_stop_filter_flushes_held_text_at_the_end() -> None:
    stops = StopFilter(["</s>"])
    assert stops.feed("end</") == "end"
    assert stops.flush() == "</"


def test_stop_filter_cuts_at_the_earliest_stop() -> None:
    stops = StopFilter(["A", "B"])
    assert stops.feed("a B c A d") + stops.flush() == "a "
    no_stop = StopFilter(["zzz"])
    assert no_stop.feed("nothing") + no_stop.flush() == "nothing"


# -- runs -------------------------------------------------------------------------------


def test_run_streams_chunks_then_finishes_with_counts() -> None:
    backend = FakeBackend()
    backend.enqueue(["The", " sea", " is", " blue", "."])
    run = Run(backend, request("Tell me about the sea")).start()
    updates = list(run.updates(0.001))
    finish = run.wait(5)
    assert updates[-1] == run.text == "The sea is blue."
    assert finish.reason is FinishReason.STOP
    assert finish.usage.completion_tokens == 5
    assert finish.usage.prompt_tokens == len(backend.tokenize("Tell me about the sea"))


def test_run_cuts_the_reply_at_a_stop_string_and_says_stop() -> None:
    backend = FakeBackend()
    backend.enqueue(["Sure", ".", "\n", "User", ":", " next", " question"])
    run = Run(backend, request(stop=("\nUser:",))).start()
    finish = run.wait(5)
    assert run.text == "Sure."
    assert finish.reason is FinishReason.STOP
    assert finish.usage.completion_tokens < 7  # generation ended at the stop string


def test_max_new_tokens_ends_with_length() -> None:
    backend = FakeBackend()
    backend.enqueue(["a"] * 50)
    run = Run(backend, request(max_new=5)).start()
    assert run.wait(5).reason is FinishReason.LENGTH
    assert run.text == "aaaaa"


def test_stop_cancels_mid_stream_and_keeps_partial_text() -> None:
    backend = FakeBackend(delay=0.02)
    backend.enqueue([f" w{i}" for i in range(200)])
    run = Run(backend, request()).start()
    while len(run.text) < 10:
        time.sleep(0.005)
    run.stop()
    finish = run.wait(5)
    assert finish.reason is FinishReason.CANCELLED
    assert 10 <= len(run.text) < len(" w0" * 200)


def test_on_done_runs_before_waiters_wake() -> None:
    backend = FakeBackend()
    seen: list[str] = []
    run = Run(backend, request())
    run.on_done(lambda r: (time.sleep(0.05), seen.append(r.text)))
    run.start().wait(5)
    assert seen == [run.text]
    late: list[str] = []
    run.on_done(lambda r: late.append(r.text))  # registering after the end calls at once
    assert late == [run.text]


def test_a_failing_callback_is_reported_not_fatal() -> None:
    run = Run(FakeBackend(), request())
    run.on_done(lambda r: (_ for _ in ()).throw(OSError("disk full")))
    run.start().wait(5)
    assert [str(e) for e in run.callback_errors] == ["disk full"]


def test_backend_failure_becomes_a_generation_error() -> None:
    backend = FakeBackend(n_ctx=8)
    run = Run(backend, request("one two three four five six seven eight nine ten")).start()
    with pytest.raises(GenerationError, match="exceed context window"):
        run.wait(5)
    assert run.finish is not None and run.finish.reason is FinishReason.ERROR


# -- the manager: one model, per-user runs ----------------------------------------------


def test_no_model_loaded_is_a_plain_error() -> None:
    with pytest.raises(NoModelLoadedError, match="Load one in the Models tab"):
        ModelManager().start(request(), "me")


def test_one_generation_at_a_time_and_stop_is_per_user() -> None:
    backend = FakeBackend(delay=0.01)
    manager = ModelManager()
    manager.attach(backend)
    backend.enqueue([f" a{i}" for i in range(100)])
    backend.enqueue([f" b{i}" for i in range(20)])
    running: list[int] = []
    peak = [0]
    original = backend.generate

    def watched(req, cancel):  # type: ignore[no-untyped-def]
        running.append(1)
        peak[0] = max(peak[0], len(running))
        try:
            yield from original(req, cancel)
        finally:
            running.pop()

    backend.generate = watched  # type: ignore[method-assign]
    alice = manager.start(request(max_new=200), owner="alice")
    bob = manager.start(request(max_new=200), owner="bob")
    while not alice.text:
        time.sleep(0.005)
    assert manager.stop("bob")  # bob is still waiting his turn
    assert bob.wait(5).reason is FinishReason.CANCELLED
    assert not alice.done
    assert alice.wait(10).reason is FinishReason.STOP
    assert alice.text.endswith("a99")
    assert peak[0] == 1
    assert not manager.stop("alice")  # nothing left to stop


def test_stop_and_wait_returns_the_ended_run_with_its_callbacks_done() -> None:
    backend = FakeBackend(delay=0.01)
    manager = ModelManager()
    manager.attach(backend)
    backend.enqueue([f" w{i}" for i in range(100)])
    run = manager.start(request(max_new=200), owner="me")
    saved: list[str] = []
    run.on_done(lambda finished: saved.append(finished.text))
    while not run.text:
        time.sleep(0.005)
    assert manager.stop_and_wait("me") is run
    assert run.done and saved == [run.text] and not run.text.endswith("w99")
    assert manager.stop_and_wait("me") is None  # nothing running any more
    manager.unload()


def test_swapping_models_waits_for_the_running_generation() -> None:
    old = FakeBackend(delay=0.01)
    old.enqueue([" x"] * 30)
    manager = ModelManager()
    manager.attach(old)
    run = manager.start(request(), "me")
    new = FakeBackend()
    swapper = threading.Thread(target=manager.attach, args=(new,))
    swapper.start()
    swapper.join(5)
    assert run.done and run.text == " x" * 30
    assert old.closed and manager.backend is new


# -- the KV-cache view -------------------------------------------------------------------


def test_kv_view_reports_reuse_and_always_evaluates_one() -> None:
    view = KVCacheView()
    assert view.plan([1, 2, 3]).reused == 0
    view.replace([1, 2, 3, 9])
    assert view.plan([1, 2, 3, 4, 5]).reused == 3
    assert view.plan([1, 2]).reused == 1
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2


def test_fake_backend_second_turn_reuses_the_prefix() -> None:
    backend = FakeBackend()
    first = Run(backend, request("System. User: hi")).start()
    first.wait(5)
    second = Run(backend, request("System. User: hi" + first.text + " User: again")).start()
    usage = second.wait(5).usage
    assert usage.prompt_reused > 0
    assert usage.prompt_evaluated < usage.prompt_tokens
