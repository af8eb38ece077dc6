"""A thinking model in a real browser, served by a stand-in for llama.cpp's server
(`thinking_server.py`): Chat shows the thinking open while it streams, then folded;
Story shows a line while the model thinks and only the answer in the story."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from browser import LIVE_HIDDEN, chromium, connect_remote, hearth_server, open_app, wait_for_bubbles
from thinking_server import ThinkingServer

pytestmark = pytest.mark.browser


@pytest.fixture
def thinker() -> Iterator[ThinkingServer]:
    server = ThinkingServer(delay=0.4)
    yield server
    server.stop()


def test_a_thinking_model_thinks_in_the_open_then_answers(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path, thinker: ThinkingServer
) -> None:
    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(tiny_gguf)) as url:
        page = open_app(browser, url)
        connect_remote(page, thinker.url, "thinker")
        page.fill("#message textarea", "Tell me about the sea.")
        page.keyboard.press("Enter")
        live = page.locator("#live-reply details.hearth-think[open]")
        expect(live.locator("summary")).to_have_text("Thinking…", timeout=30_000)
        expect(live).to_contain_text("The reader wants more")
        page.screenshot(path=str(artifacts / "thinking-live.png"))
        wait_for_bubbles(page, 2, timeout=60_000)
        page.wait_for_function(LIVE_HIDDEN)
        reply = page.locator("#history [data-testid='bot']").last
        expect(reply.locator("details.hearth-think summary")).to_contain_text("Thought")
        expect(reply.locator(".hearth-thinking")).to_be_hidden()
        assert reply.locator(".hearth-text > p").last.inner_text() == "The tide came in."

        page.get_by_role("tab", name="Story").click()
        box = page.locator("#story-text textarea")
        box.fill("It was a grey morning.")
        page.click("#story-generate")
        expect(page.locator("#story-live")).to_contain_text("thinking", timeout=30_000)
        page.screenshot(path=str(artifacts / "thinking-story.png"))
        expect(page.locator("#story-live")).to_be_hidden(timeout=30_000)
        expect(box).to_be_enabled(timeout=30_000)
        expect(box).to_have_value("It was a grey morning. The tide came in.")
