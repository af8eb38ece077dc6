"""The Chat tab in a real browser, on the bundled model: stream, stop, restart, reload."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from browser import LIVE_HIDDEN, chat_texts, chromium, hearth_server, live_text, open_app

pytestmark = [pytest.mark.browser, pytest.mark.gemma]

# Gradio removes a hidden component from the page, or leaves it without layout.
XSS = '<img src=x onerror="window.__hearth_xss=1"><script>window.__hearth_xss=2</script>'


def send(page: Page, text: str) -> None:
    page.fill("#message textarea", text)
    page.keyboard.press("Enter")


def watch_stream(page: Page, timeout: float = 90) -> list[str]:
    """Collect the distinct texts the live reply shows until it disappears."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    started = False
    while time.monotonic() < deadline:
        text = live_text(page)
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        started = started or bool(text)
        if started and not text:
            return seen
        time.sleep(0.03)
    raise AssertionError(f"the reply never finished streaming; saw {seen[-1:]}")


def press_stop_mid_reply(page: Page, text: str) -> bool:
    """Send `text`, press Stop as soon as the reply starts; True if it was stopped."""
    before = page.inner_text("#context-status")
    send(page, text)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if live_text(page):
            page.click("#stop")
            break
        status = page.inner_text("#context-status")
        if status != before and status.startswith("Context:"):
            return False  # the whole reply arrived before Stop could be pressed
        time.sleep(0.01)
    status = wait_status(page, "Context:")
    page.wait_for_function(LIVE_HIDDEN)
    return "stopped" in status


def wait_status(page: Page, fragment: str, timeout: float = 60) -> str:
    page.wait_for_function(
        f"() => (document.querySelector('#context-status')?.innerText || '').includes({fragment!r})",
        timeout=timeout * 1000,
    )
    return page.inner_text("#context-status")


def test_chat_streams_stops_and_survives_a_restart(tmp_path: Path, artifacts: Path) -> None:
    data_dir = tmp_path / "data"
    with chromium() as browser:
        with hearth_server(data_dir, "--n-ctx", "2048") as url:
            page = open_app(browser, url)
            # 1. Send a message and watch the reply stream in.
            send(page, "Tell me a story about a brave little fox.")
            streamed = watch_stream(page)
            assert len(streamed) >= 2, f"the reply did not stream: {streamed}"
            assert all(streamed[i + 1].startswith(streamed[i][:10]) for i in range(len(streamed) - 1))
            wait_status(page, "Context:")
            history = chat_texts(page)
            assert history[0] == "Tell me a story about a brave little fox."
            first_reply = history[1]
            assert first_reply and first_reply[:20] in streamed[-1]
            page.screenshot(path=str(artifacts / "chat-streamed.png"), full_page=True)

            # 2. Press Stop while a long reply streams; the partial reply is kept.
            stopped = False
            for attempt in range(6):
                if press_stop_mid_reply(
                    page, f"Now write a very long poem about the sea, verse after verse ({attempt})."
                ):
                    stopped = True
                    break
            assert stopped, "every reply finished before Stop could be pressed"
            history = chat_texts(page)
            assert history[-2].startswith("Now write a very long poem")
            page.screenshot(path=str(artifacts / "chat-stopped.png"), full_page=True)

            # 3. HTML in a message is shown as text and never runs.
            send(page, XSS)
            watch_stream(page)
            wait_status(page, "Context:")
            assert page.evaluate("() => window.__hearth_xss") is None
            assert any("onerror" in text for text in chat_texts(page))
            assert page.query_selector("#history img[src='x']") is None
            saved = chat_texts(page)
            page.close()

        # 4. Restart the server, reload, and find the chat with its messages.
        with hearth_server(data_dir, "--n-ctx", "2048") as url:
            page = open_app(browser, url)
            page.wait_for_function(
                "() => document.querySelectorAll('#history [data-testid=\"user\"]').length >= 3",
                timeout=60_000,
            )
            assert chat_texts(page) == saved
            chosen = page.input_value("#session-list input")
            assert chosen.startswith("Tell me a story about a brave little fox.")
            page.screenshot(path=str(artifacts / "chat-after-restart.png"), full_page=True)
