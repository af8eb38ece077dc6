"""Roleplay in a real browser: cards, greetings as swipes, regenerate, export, and XSS."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser import (
    LIVE_HIDDEN,
    chat_texts,
    chromium,
    hearth_server,
    open_app,
    send_and_wait,
    wait_for_bubbles,
)
from tiny_model import write_tiny_llama

pytestmark = pytest.mark.browser

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
        wait_for_bubbles(page, 1)
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
        wait_for_bubbles(page, 3)
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
        wait_for_bubbles(page, 1)
        for _ in range(len(PAYLOADS)):
            page.click("#swipe-right")  # every alternate greeting gets rendered
            time.sleep(0.3)
        page.fill("#message textarea", f"hello {PAYLOADS[0]} {PAYLOADS[1]}")
        page.click("#send")
        wait_for_bubbles(page, 3)
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


def test_editor_persona_world_books_and_message_actions(
    tmp_path: Path, artifacts: Path, third_party: Path
) -> None:
    data_dir = tmp_path / "data"
    # Seraphina and her world book are long, and the tiny model reads text byte by byte.
    model = write_tiny_llama(tmp_path / "tiny-long.gguf", context=16384)
    with chromium() as browser, hearth_server(data_dir, "--model", str(model), "--n-ctx", "16384") as url:
        page = open_app(browser, url)
        import_card(page, third_party / "cards" / "default_Seraphina.png")
        expect(page.locator("#character-choice input")).to_have_value("Seraphina", timeout=30_000)

        # The editor: rename and save; the card exports as a PNG with both chunks.
        page.get_by_text("Character editor", exact=True).click()
        page.fill("#edit-name textarea", "Seraphina the Kind")
        page.click("#save-character")
        expect(page.locator("#character-choice input")).to_have_value("Seraphina the Kind", timeout=30_000)
        page.click("#export-png")
        link = page.locator("#download a").first
        expect(link).to_be_visible(timeout=30_000)
        with page.expect_download() as download_info:
            link.click()
        png = Path(download_info.value.path()).read_bytes()
        assert png.startswith(b"\x89PNG") and b"tEXtchara" in png and b"tEXtccv3" in png

        # A persona locked to this chat; a world book enabled for every chat.
        page.get_by_text("Persona (you)", exact=True).click()
        page.click("#persona-new")
        expect(page.locator("#persona-name textarea")).to_have_value("New persona")
        page.fill("#persona-name textarea", "Ann")
        page.check("#persona-lock input")
        page.click("#persona-save")
        expect(page.locator("#persona-choice input")).to_have_value("Ann", timeout=30_000)
        page.get_by_text("World books", exact=True).click()
        with page.expect_file_chooser() as chooser:
            page.click("#world-import")
        chooser.value.set_files(str(third_party / "cards" / "Eldoria.json"))
        expect(page.locator("#world-books")).to_contain_text("Eldoria", timeout=30_000)

        # Chatting, then acting on single messages.
        for text in ("first line", "second line"):
            send_and_wait(page, text)
        assert len(chat_texts(page)) == 5
        before = last_reply(page)
        page.click("#continue")
        wait_reply_done(page)
        assert len(last_reply(page)) >= len(before)
        page.click("#impersonate")
        page.wait_for_function(
            "() => document.querySelector('#message textarea').value.length > 0", timeout=60_000
        )
        page.fill("#message textarea", "")

        bubbles = page.locator("#history .message-content")
        bubbles.nth(1).click()  # "first line"
        expect(page.locator("#message-edit textarea")).to_be_visible()
        page.fill("#message-edit textarea", "an edited first line")
        page.click("#message-save")
        expect(page.locator("#history")).to_contain_text("an edited first line")
        page.locator("#history .message-content").nth(1).click()
        page.click("#message-hide")
        expect(page.locator("#history")).to_contain_text("(hidden from the prompt)")
        page.locator("#history .message-content").nth(3).click()  # "second line"
        page.click("#message-delete")
        wait_for_bubbles(page, 4)
        assert "second line" not in page.inner_text("#history")
        page.locator("#history .message-content").nth(1).click()
        page.click("#message-branch")
        expect(page.locator("#session-list input")).to_have_value(re.compile(r"\(branch\)"), timeout=30_000)
        wait_for_bubbles(page, 2)
        page.screenshot(path=str(artifacts / "roleplay-controls.png"), full_page=True)

        # Importing a SillyTavern chat file gives the character a new chat.
        page.get_by_text("Chat files", exact=True).click()
        with page.expect_file_chooser() as chooser:
            page.click("#import-chat")
        chooser.value.set_files(str(third_party / "chats" / "1673323621108.jsonl"))
        wait_for_bubbles(page, 3, timeout=30_000)

    sessions = list((data_dir / "sessions").iterdir())
    locked = [json.loads((s / "session.json").read_text()) for s in sessions]
    extras = [next(iter(doc["session"].values()))["extra"] for doc in locked]
    assert any("persona_id" in extra for extra in extras)
    assert any("branched_from" in extra for extra in extras)
