"""Roleplay in a real browser: cards, greetings as swipes, regenerate, export, and XSS."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser import chat_texts, chromium, hearth_server, open_app

pytestmark = pytest.mark.browser

LIVE_HIDDEN = (
    "() => { const e = document.querySelector('#live-reply'); return !e || e.offsetParent === null; }"
)
PAYLOADS = [
    '<img src=x onerror="window.__hearth_xss=1">',
    "<script>window.__hearth_xss=2</script>",
    '<svg onload="window.__hearth_xss=3"></svg>',
    '<iframe src="javascript:window.parent.__hearth_xss=4"></iframe>',
    "[click me](javascript:window.__hearth_xss=5)",
    '<a href="javascript:window.__hearth_xss=6">link</a>',
    '"><b onmouseover="window.__hearth_xss=7">hover</b>',
]


def import_card(page: Page, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.click("#import-card")
    chooser.value.set_files(str(path))


def last_reply(page: Page) -> str:
    return chat_texts(page)[-1]


def wait_reply_done(page: Page) -> None:
    page.wait_for_function(LIVE_HIDDEN, timeout=60_000)
    time.sleep(0.3)
    page.wait_for_function(LIVE_HIDDEN, timeout=60_000)


def test_card_greetings_swipes_regenerate_and_export(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path, third_party: Path
) -> None:
    card = json.loads((third_party / "cards" / "test-card.json").read_text())["data"]
    greetings = [card["first_mes"], *card["alternate_greetings"]]
    with (
        chromium() as browser,
        hearth_server(tmp_path / "data", "--model", str(tiny_gguf), "--n-ctx", "2048") as url,
    ):
        page = open_app(browser, url)
        import_card(page, third_party / "cards" / "test-card.json")
        expect(page.locator("#character-choice input")).to_have_value(card["name"], timeout=30_000)
        page.wait_for_function("() => document.querySelectorAll('#history .message-content').length === 1")
        shown_greeting = last_reply(page)
        expected = greetings[0].replace("{{user}}", "User").replace("{{char}}", card["name"])
        assert shown_greeting.startswith(re.sub(r"[*_]", "", expected)[:30])  # shown as rendered Markdown
        expect(page.locator("#swipe-label")).to_contain_text(f"Reply 1 of {len(greetings)}")

        page.click("#swipe-right")  # the first alternate greeting
        expect(page.locator("#swipe-label")).to_contain_text(f"Reply 2 of {len(greetings)}")
        assert last_reply(page) != shown_greeting
        alternate = last_reply(page)
        page.screenshot(path=str(artifacts / "roleplay-alternate-greeting.png"), full_page=True)

        page.fill("#message textarea", "hello there")
        page.click("#send")
        page.wait_for_function(
            "() => document.querySelectorAll('#history .message-content').length === 3", timeout=60_000
        )
        wait_reply_done(page)
        first_reply = last_reply(page)

        page.click("#regenerate")  # a new version of the reply, kept as a swipe
        expect(page.locator("#swipe-label")).to_contain_text("Reply 2 of 2", timeout=60_000)
        wait_reply_done(page)
        page.click("#swipe-left")  # back to the first version
        expect(page.locator("#swipe-label")).to_contain_text("Reply 1 of 2")
        assert last_reply(page) == first_reply
        assert chat_texts(page)[0] == alternate  # the chosen greeting stays chosen

        page.get_by_text("Chat files", exact=True).click()
        page.click("#export-chat")
        link = page.locator("#download a").first
        expect(link).to_be_visible(timeout=30_000)
        with page.expect_download() as download_info:
            link.click()
        exported = Path(download_info.value.path()).read_text(encoding="utf-8").splitlines()
        header, *lines = [json.loads(line) for line in exported]
        assert header["character_name"] == card["name"]
        assert [m["is_user"] for m in lines] == [False, True, False]
        assert lines[0]["swipes"][lines[0]["swipe_id"]] == lines[0]["mes"]
        assert len(lines[0]["swipes"]) == len(greetings) and lines[0]["swipe_id"] == 1
        assert len(lines[2]["swipes"]) == 2 and lines[2]["swipe_id"] == 0
        assert lines[2]["mes"] == lines[2]["swipes"][0] != lines[2]["swipes"][1]
        page.screenshot(path=str(artifacts / "roleplay-exported.png"), full_page=True)


def test_a_card_full_of_script_runs_nothing(tmp_path: Path, artifacts: Path, tiny_gguf: Path) -> None:
    joined = " ".join(PAYLOADS)
    card = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": '<img src=x onerror="window.__hearth_xss=10">Mallory',
            "description": joined, "personality": PAYLOADS[1], "scenario": PAYLOADS[2],
            "first_mes": f"Hello {{{{user}}}}! {joined}",
            "mes_example": f"<START>\n{{{{char}}}}: {PAYLOADS[0]}",
            "creator_notes": joined, "system_prompt": "", "post_history_instructions": "",
            "alternate_greetings": PAYLOADS, "tags": PAYLOADS[:3], "creator": joined,
            "character_version": "1",
            "extensions": {},
            "character_book": {"entries": [{"keys": ["hello"], "content": joined, "extensions": {},
                                            "enabled": True, "insertion_order": 1}], "extensions": {}},
        },
    }  # fmt: skip
    path = tmp_path / "mallory.json"
    path.write_text(json.dumps(card))
    with (
        chromium() as browser,
        hearth_server(tmp_path / "data", "--model", str(tiny_gguf), "--n-ctx", "2048") as url,
    ):
        page = open_app(browser, url)
        import_card(page, path)
        expect(page.locator("#character-choice input")).to_have_value(card["data"]["name"], timeout=30_000)
        page.wait_for_function("() => document.querySelectorAll('#history .message-content').length === 1")
        for _ in range(len(PAYLOADS)):
            page.click("#swipe-right")  # every alternate greeting gets rendered
            time.sleep(0.3)
        page.fill("#message textarea", f"hello {PAYLOADS[0]} {PAYLOADS[1]}")
        page.click("#send")
        page.wait_for_function(
            "() => document.querySelectorAll('#history .message-content').length === 3", timeout=60_000
        )
        wait_reply_done(page)
        page.get_by_text("Character editor", exact=True).click()
        page.get_by_text("Gallery", exact=True).click()
        page.locator("#history [data-testid='user'] .message-content").last.hover()
        page.locator("#history [data-testid='user'] .message-content").last.click()
        time.sleep(1)
        page.screenshot(path=str(artifacts / "roleplay-xss.png"), full_page=True)
        assert "The prompt needs" not in page.inner_text("body")  # the chat really ran
        assert page.evaluate("() => window.__hearth_xss") is None
        assert page.evaluate("() => window.frames.length") == 0
        assert page.query_selector("img[src='x']") is None  # not in messages, notes or toasts
        assert page.query_selector(".toast-body img, [data-testid='toast-body'] img") is None
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")]
        assert "onerror" in page.inner_text("#history")  # shown as text, not run
