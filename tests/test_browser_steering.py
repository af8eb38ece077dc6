"""A grammar in the sampler panel, in a real browser on the tiny model: the reply follows
it, and a grammar llama.cpp cannot parse is a message, not a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect
from test_browser_cards import toast

from browser import LIVE_HIDDEN, chat_texts, chromium, hearth_server, open_app, wait_for_bubbles

pytestmark = pytest.mark.browser


def test_a_grammar_decides_the_reply(tmp_path: Path, artifacts: Path, tiny_gguf: Path) -> None:
    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(tiny_gguf)) as url:
        page = open_app(browser, url)
        page.get_by_text("Sampler", exact=True).filter(visible=True).first.click()
        page.get_by_text("Constrain the reply (grammar, JSON schema)").filter(visible=True).first.click()
        grammar = page.locator("#sampler-grammar textarea").filter(visible=True).first
        grammar.fill("root ::= ( oops")
        page.fill("#message textarea", "Is the sea calm?")
        page.click("#send")
        expect(toast(page, "grammar could not be used")).to_be_visible(timeout=60_000)
        # The tab is ready again: no reply half shown, Send back in Stop's place.
        page.wait_for_function(LIVE_HIDDEN, timeout=60_000)
        expect(page.locator("#send")).to_be_visible()

        grammar.fill('root ::= "Yes, calm." | "No, stormy."')
        page.screenshot(path=str(artifacts / "steering-grammar.png"), full_page=True)
        page.click("#regenerate")
        wait_for_bubbles(page, 2)
        page.wait_for_function(LIVE_HIDDEN, timeout=60_000)
        assert chat_texts(page)[-1] in ("Yes, calm.", "No, stormy.")


def test_story_says_what_failed_and_is_ready_again(tmp_path: Path, tiny_gguf: Path) -> None:
    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(tiny_gguf)) as url:
        page = open_app(browser, url)
        page.get_by_role("tab", name="Story").click()
        page.get_by_text("Sampler", exact=True).filter(visible=True).first.click()
        page.get_by_text("Constrain the reply (grammar, JSON schema)").filter(visible=True).first.click()
        page.locator("#sampler-json-schema textarea").filter(visible=True).first.fill('{"type": "nonsense"}')
        box = page.locator("#story-text textarea")
        box.fill("The sea was grey.")
        page.click("#story-generate")
        expect(toast(page, "JSON schema could not be used")).to_be_visible(timeout=60_000)
        expect(box).to_be_enabled(timeout=30_000)
        expect(box).to_have_value("The sea was grey.")
