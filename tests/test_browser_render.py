"""Rendering in a real browser: what Hearth sends through Gradio's own Markdown pass and
sanitizer reaches the page as intended, and no image in a message, a card or a model's
name makes the browser fetch anything.

A small HTTP server on 127.0.0.1 stands in for a tracker: every URL in the text points
at it, it counts the requests it gets, and the page records every request it makes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, expect

from browser import chromium, hearth_server, wait_for_bubbles
from tiny_model import write_tiny_llama

pytestmark = pytest.mark.browser

BUBBLE = "#history [data-testid='bot'] .message-content"


@contextmanager
def tracker() -> Iterator[tuple[str, list[str]]]:
    """A local server that answers every GET with a tiny PNG and notes its path."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - as in the base class
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def card_json(base: str) -> dict[str, object]:
    greeting = (
        # (a) a code span in a GFM table: its `|` ends the cell, so the <img> is outside code
        f'| a | b |\n|---|---|\n| `x|<img src="{base}/table.png">|y` | c |\n\n'
        # (b) fenced and indented code in a list item
        "- step\n\n  ```\n  if a < b && c:\n  ```\n\n      x <y> && z\n\n"
        f"![pixel]({base}/image.png) [go](javascript:alert(1)) [site](https://example.org/)\n\n"
        # LaTeX is kept out of Markdown, so KaTeX gets it as written
        "$$a *b* < c \\\\ d$$\n\n"
        # (c) code that names its language: coloured, with a Copy button
        '```python\nprint("<hi>")\n```'
    )
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": f"Pix ![]({base}/name.png)",
            "description": "A test.", "personality": "", "scenario": "", "first_mes": greeting,
            "mes_example": "", "creator_notes": f"Notes ![]({base}/notes.png) <img src={base}/raw.png>",
            "system_prompt": "", "post_history_instructions": "", "alternate_greetings": [],
            "tags": [f"![]({base}/tag.png)", "plain"], "creator": "t", "character_version": "1",
            "extensions": {},
        },
    }  # fmt: skip


def foreign(requests: list[Request], app: str) -> list[str]:
    origin = urlsplit(app)
    return [
        r.url
        for r in requests
        if urlsplit(r.url).scheme in ("http", "https", "ws", "wss")
        and (urlsplit(r.url).hostname, urlsplit(r.url).port) != (origin.hostname, origin.port)
    ]


def open_app(page: Page, url: str) -> None:
    """browser.open_app, on a page made by the caller (so it can listen first)."""
    page.goto(url)
    page.wait_for_function(
        "() => (document.querySelector('#context-status')?.innerText || '').includes('Context:')",
        timeout=120_000,
    )


def import_card(page: Page, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.click("#import-card")
    chooser.value.set_files(str(path))


def test_messages_cards_and_model_facts_fetch_nothing(tmp_path: Path, artifacts: Path) -> None:
    with tracker() as (base, hits):
        model = write_tiny_llama(
            tmp_path / "named.gguf", name=f"Tiny ![]({base}/model.png) <img src={base}/m>"
        )
        card_path = tmp_path / "pix.json"
        card_path.write_text(json.dumps(card_json(base)))
        with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(model)) as url:
            requests: list[Request] = []
            context = browser.new_context(
                viewport={"width": 1400, "height": 1000}, permissions=["clipboard-read", "clipboard-write"]
            )
            page = context.new_page()
            page.on("request", lambda request: requests.append(request))  # from the first one on
            open_app(page, url)
            import_card(page, card_path)
            wait_for_bubbles(page, 1)
            bubble = page.locator(BUBBLE).first
            expect(bubble.locator("table td").first).to_have_text("`x")
            expect(page.locator("#character-notes")).to_contain_text("Notes", timeout=30_000)

            # (a) the table's cell shows the tag as text; the bubble holds no image
            cells = bubble.locator("td").all_inner_texts()
            assert f'<img src="{base}/table.png">' in cells
            # (b) code in the list item shows `<` and `&&` as they were written
            assert bubble.locator("li pre code").all_inner_texts() == ["if a < b && c:\n", "x <y> && z\n"]
            links = bubble.locator("a").evaluate_all("els => els.map(e => [e.href, e.target, e.rel])")
            assert links == [["https://example.org/", "_blank", "noopener noreferrer"]]
            assert "pixel" in bubble.inner_text() and "[go](javascript:alert(1))" in bubble.inner_text()
            tex = bubble.locator(".katex annotation[encoding='application/x-tex']")
            expect(tex).to_have_count(1)
            assert tex.text_content() == "a *b* < c \\\\ d"
            # (c) coloured by token, and its Copy button copies the code as written
            python = bubble.locator(".hearth-code").last
            expect(python.locator(".hl-nb")).to_have_text("print")
            python.locator(".hearth-copy-code").click()
            expect(python.locator(".hearth-copy-code")).to_have_text("Copied")
            assert page.evaluate("() => navigator.clipboard.readText()") == 'print("<hi>")\n'
            assert bubble.locator(".hearth-code").count() == 3  # every code block has its button
            bubble.locator(".act-copy").click()  # the whole message: no button's label in it
            expect(bubble.locator(".act-copy")).to_have_text("Copied")
            copied = page.evaluate("() => navigator.clipboard.readText()")
            assert 'print("<hi>")' in copied and "Copy" not in copied and "Copied" not in copied

            # the sidebar: name, tags and creator's notes, as text
            notes = page.inner_text("#character-notes")
            assert f"Pix ![]({base}/name.png)" in notes and f"![]({base}/tag.png)" in notes
            assert f"<img src={base}/raw.png>" in notes

            # the model's name in the Models tab's summary and facts
            page.get_by_role("tab", name="Models").click()
            page.get_by_role("button", name="Details of the loaded model").click()
            expect(page.locator("#model-facts")).to_contain_text("Architecture", timeout=60_000)
            assert f"Tiny ![]({base}/model.png) <img src={base}/m>" in page.inner_text("#model-facts")
            assert f"![]({base}/model.png)" in page.inner_text("#model-summary")
            page.screenshot(path=str(artifacts / "render-models.png"), full_page=True)
            page.get_by_role("tab", name="Chat").click()
            page.screenshot(path=str(artifacts / "render-chat.png"), full_page=True)

            for where in (BUBBLE, "#character-notes", "#model-facts", "#model-summary"):
                assert page.locator(f"{where} img").count() == 0, where
            assert foreign(requests, url) == []
            page.close()
    assert hits == []


def test_the_pages_own_scripts_run_without_an_error(tmp_path: Path, tiny_gguf: Path) -> None:
    """A slip in a script of <head> (ui/script.py, ui/keystrokes.py, ui/live.py) stops it
    silently: the theme switch, Copy and held keys would all be gone."""
    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(tiny_gguf)) as url:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        open_app(page, url)
        assert page.evaluate("() => typeof window.hearth?.toggleMenu") == "function"
        for tab in ("Story", "Adventure", "Models", "Chat"):
            page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(500)
        assert errors == []
