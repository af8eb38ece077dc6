"""Replies followed over their own channel (services.live, api.live) and the page prelude
(api.prelude), on the fake backend and Starlette's test client."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api.live import live_route
from api.prelude import PagePrelude
from engine.fake import FakeBackend
from engine.run import Run
from engine.types import GenerationRequest
from presets.samplers import SamplerParams
from services import live
from services.live import LiveRuns, marker, shown_texts


def started(pieces: list[str], delay: float = 0.0) -> Run:
    backend = FakeBackend(delay=delay)
    backend.enqueue(pieces)
    return Run(backend, GenerationRequest("Hi", SamplerParams(max_new_tokens=64), ())).start()


def collect(runs: LiveRuns, token: str) -> list[str]:
    followed = runs.get(token)
    assert followed is not None

    async def gather() -> list[str]:
        return [text async for text in shown_texts(followed, interval=0.01)]

    return asyncio.run(gather())


def test_the_page_sees_the_reply_grow_then_its_last_text() -> None:
    runs = LiveRuns()
    run = started(["The", " sea", " is", " blue."], delay=0.05)
    token = runs.follow(run, lambda text: "Once. " + text)
    shown = collect(runs, token)
    assert shown[-1] == "Once. The sea is blue."
    assert len(shown) > 1, "the reply should have been seen growing, not only finished"
    assert all(later.startswith(earlier) for earlier, later in zip(shown, shown[1:], strict=False))


def test_a_run_that_ended_before_it_was_followed_still_shows_its_text() -> None:
    runs = LiveRuns()
    run = started(["Done", " already."])
    run.wait(10)
    token = runs.follow(run, str.upper)
    assert collect(runs, token) == ["DONE ALREADY."]


def test_tokens_are_unguessable_and_finished_runs_are_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = LiveRuns()
    tokens = set()
    for _ in range(3):
        run = started(["x"])
        run.wait(10)
        tokens.add(runs.follow(run, str))
    assert len(tokens) == 3 and all(re.fullmatch(r"[A-Za-z0-9_-]{24}", t) for t in tokens)
    assert runs.get("not-a-token") is None
    monkeypatch.setattr(live, "KEEP_FINISHED", -1.0)
    assert all(runs.get(token) is None for token in tokens)


def test_only_so_many_finished_runs_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "MOST_FOLLOWED", 4)
    runs = LiveRuns()
    ended = []
    for _ in range(6):
        run = started(["x"])
        run.wait(10)
        ended.append(runs.follow(run, str))
    kept = [t for t in ended if runs.get(t) is not None]
    assert kept == ended[-4:]


def test_the_marker_names_the_run_and_the_box_in_classes() -> None:
    box = marker("abc", "hi", into="story-text")
    assert box == '<span class="hearth-run-abc hearth-into-story-text">hi</span>'
    assert marker("abc", tag="div", classes="hearth-text") == '<div class="hearth-run-abc hearth-text"></div>'


def app_with(runs: LiveRuns, signed_in: bool = True) -> TestClient:
    return TestClient(Starlette(routes=[live_route(runs, lambda _request: signed_in)]))


def test_the_route_streams_events_then_ends() -> None:
    runs = LiveRuns()
    run = started(["Hello", " <b>there</b>"], delay=0.02)
    token = runs.follow(run, lambda text: text)
    with app_with(runs).stream("GET", f"/hearth/live/{token}") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        body = "".join(response.iter_text())
    updates = [json.loads(line[len("data: ") :]) for line in body.splitlines() if line.startswith("data: {")]
    assert [set(update) for update in updates] == [{"text"}] * len(updates)  # HTML goes whole
    assert updates[-1]["text"] == "Hello <b>there</b>"
    assert body.rstrip().endswith("event: end\ndata:")


def test_plain_text_is_sent_as_what_grew() -> None:
    runs = LiveRuns()
    run = started(["Once", " upon", " a", " time."], delay=0.2)
    token = runs.follow(run, lambda text: "Story. " + text, plain=True)
    with app_with(runs).stream("GET", f"/hearth/live/{token}") as response:
        body = "".join(response.iter_text())
    updates = [json.loads(line[len("data: ") :]) for line in body.splitlines() if line.startswith("data: {")]
    assert "text" in updates[0] and all(set(u) == {"append"} for u in updates[1:]) and len(updates) > 1
    shown = updates[0]["text"] + "".join(u["append"] for u in updates[1:])
    assert shown == "Story. Once upon a time."


def test_the_route_refuses_unknown_tokens_and_pages_not_signed_in() -> None:
    runs = LiveRuns()
    run = started(["x"])
    token = runs.follow(run, str)
    assert app_with(runs).get("/hearth/live/nope").status_code == 404
    refused = app_with(runs, signed_in=False).get(f"/hearth/live/{token}")
    assert refused.status_code == 401 and "x" not in refused.text


def prelude_app() -> TestClient:
    def page(_request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><html><head><title>t</title></head><body><p>hi</p></body></html>")

    def text(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("<head>not a page</head>")

    app = Starlette(routes=[Route("/", page), Route("/text", text)])
    return TestClient(PagePrelude(app, "<script>first()</script>"))


def test_the_prelude_goes_first_in_html_pages_only() -> None:
    client = prelude_app()
    page = client.get("/")
    assert page.text.startswith("<!doctype html><html><head><script>first()</script><title>")
    assert page.text.count("first()") == 1
    assert int(page.headers["content-length"]) == len(page.content)
    assert client.get("/text").text == "<head>not a page</head>"
