"""Helpers for real-browser tests: run Hearth as a subprocess, drive Debian's Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def hearth_server(
    data_dir: Path,
    *extra: str,
    port: int | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Start `app.py` and yield its URL once it answers HTTP 200."""
    port = port or free_port()
    log_file = open(log or data_dir.parent / f"hearth-{port}.log", "ab")  # noqa: SIM115 - closed below
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--data-dir", str(data_dir), *extra],
        cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Hearth exited with code {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"Hearth did not answer at {url}")


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_app(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector("#message textarea", timeout=60_000)
    # The load event fills the chat list and the context status once the model is ready.
    page.wait_for_function(
        "() => (document.querySelector('#context-status')?.innerText || '').includes('Context:')",
        timeout=120_000,
    )
    return page


LIVE_HIDDEN = (
    "() => { const e = document.querySelector('#live-reply'); return !e || e.offsetParent === null; }"
)
"""True once no reply is streaming: the live reply is gone or hidden."""


# A bubble frames its message with the speaker's name above and actions below; this is the message.
OWN_TEXT = "e => (e.querySelector('.hearth-text') || e).innerText.trim()"


def chat_texts(page: Page, selector: str = "#history") -> list[str]:
    """The visible text of each message bubble (the message, without its frame), oldest first."""
    return page.eval_on_selector_all(
        f"{selector} [data-testid='user'] .message-content, {selector} [data-testid='bot'] .message-content",
        f"els => els.map({OWN_TEXT})",
    )


def chat_names(page: Page, selector: str = "#history") -> list[str]:
    """The speaker's name on each message bubble, oldest first."""
    return page.eval_on_selector_all(
        f"{selector} .message-content .hearth-name", "els => els.map(e => e.innerText.trim())"
    )


def wait_for_bubbles(page: Page, count: int, timeout: float = 60_000, selector: str = "#history") -> None:
    """Wait until the history shows `count` message bubbles (the ones `chat_texts` reads)."""
    bubbles = (
        f"{selector} [data-testid='user'] .message-content, {selector} [data-testid='bot'] .message-content"
    )
    page.wait_for_function(
        f'() => document.querySelectorAll("{bubbles}").length === {count}', timeout=timeout
    )


def live_text(page: Page) -> str:
    """The streaming reply, or '' when no reply is streaming."""
    return page.evaluate(
        """() => {
            const live = document.querySelector('#live-reply');
            if (!live || live.offsetParent === null) return '';
            const bot = live.querySelector("[data-testid='bot'] .message-content");
            return bot ? (bot.querySelector('.hearth-text') || bot).innerText.trim() : '';
        }"""
    )


def watch_status(page: Page, selector: str, until: str, timeout: float = 90) -> list[str]:
    """Collect the distinct texts of a status line until one contains `until`."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = page.inner_text(selector)
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        if until in text:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{selector} never said {until!r}; saw {seen}")


def send_and_wait(page: Page, text: str) -> None:
    """Send a chat message and wait until its reply is in the history."""
    before = len(chat_texts(page))
    page.fill("#message textarea", text)
    page.click("#send")
    wait_for_bubbles(page, before + 2)
    page.wait_for_function(LIVE_HIDDEN, timeout=60_000)


def connect_remote(page: Page, url: str, name: str) -> None:
    """Use the model the server at `url` serves (Models → Remote engine), named `name`."""
    page.get_by_role("tab", name="Models").click()
    page.get_by_role("tab", name="Remote engine").click()
    page.fill("#remote-url textarea, #remote-url input", url)
    page.click("#remote-connect")
    expect(page.locator("#remote-status")).to_contain_text(name, timeout=60_000)
    page.get_by_role("tab", name="Chat").click()
