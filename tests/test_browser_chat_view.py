"""The chat view a roleplayer and a newcomer meet, in a real browser: who speaks on each
bubble, the actions under it (Undo for a delete), the chat list, Send turning into Stop,
the line about the model, the default system prompt, a phone's first screen, and the
light/dark switch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser import (
    LIVE_HIDDEN,
    ROOT,
    chat_names,
    chat_texts,
    chromium,
    connect_remote,
    hearth_server,
    live_text,
    open_app,
    wait_for_bubbles,
)
from thinking_server import ThinkingServer
from tiny_model import write_tiny_llama

pytestmark = pytest.mark.browser

BUBBLES = "#history .message-content"
ROLES = """() => [...document.querySelectorAll("#history [data-testid='user'], #history [data-testid='bot']")]
    .map(e => e.dataset.testid)"""
PHONE = {"width": 390, "height": 844}


def load(page: Page, url: str | None = None) -> Page:
    """Open (or reload) the app in `page` and wait until the chat is ready."""
    if url is None:
        page.reload()
    else:
        page.goto(url)
    page.wait_for_selector("#message textarea", timeout=60_000)
    page.wait_for_function(
        "() => (document.querySelector('#context-status')?.innerText || '').includes('Context:')",
        timeout=120_000,
    )
    return page


def send_and_wait(page: Page, text: str) -> None:
    before = len(chat_texts(page))
    page.fill("#message textarea", text)
    page.keyboard.press("Enter")
    wait_for_bubbles(page, before + 2)
    page.wait_for_function(LIVE_HIDDEN, timeout=60_000)
    expect(page.locator("#send")).to_be_visible(timeout=30_000)


def wait_for_words(page: Page) -> None:
    """Until the reply being written shows a word or two (so Stop keeps something)."""
    page.wait_for_function(
        "() => (document.querySelector('#live-reply .hearth-text')?.innerText || '').trim().length > 0",
        timeout=120_000,
    )


def bubble_action(page: Page, index: int, action: str) -> None:
    page.locator(BUBBLES).nth(index).locator(f".act-{action}").click()


def options(page: Page) -> list[str]:
    return [text.strip() for text in page.get_by_role("option").all_inner_texts()]


def search(page: Page, dropdown: str, text: str) -> None:
    """Type into a dropdown as a person does (Gradio filters on key presses)."""
    page.click(f"{dropdown} input")
    page.keyboard.press("Control+a")
    page.keyboard.type(text)


def test_bubbles_name_their_speakers_act_undo_and_the_chat_list_searches(
    tmp_path: Path, artifacts: Path, third_party: Path
) -> None:
    model = write_tiny_llama(tmp_path / "tiny.gguf", context=4096)
    with (
        chromium() as browser,
        hearth_server(tmp_path / "data", "--model", str(model), "--n-ctx", "4096") as url,
    ):
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, permissions=["clipboard-read", "clipboard-write"]
        )
        page = load(context.new_page(), url)

        # The assistant and you: names, and an initial where there is no picture.
        send_and_wait(page, "hello there")
        assert chat_names(page) == ["User", "Assistant"]
        assert page.locator("#history .hearth-initial").all_inner_texts() == ["U", "A"]

        # A character with a picture: the card's avatar on its bubbles.
        with page.expect_file_chooser() as chooser:
            page.click("#import-card")
        chooser.value.set_files(str(third_party / "cards" / "Aqua.png"))
        expect(page.locator("#character-choice input")).to_have_value("Aqua", timeout=30_000)
        wait_for_bubbles(page, 1)
        send_and_wait(page, "first line")
        assert chat_names(page) == ["Aqua", "User", "Aqua"]
        avatar = page.locator(f"{BUBBLES} img.hearth-avatar").first
        expect(avatar).to_be_visible()
        assert avatar.evaluate("img => img.complete && img.naturalWidth > 0")  # the picture loaded
        page.screenshot(path=str(artifacts / "chat-view-bubbles.png"))

        # Delete from the bubble, then Undo: the message is back where it was.
        before = chat_texts(page)
        bubble_action(page, 1, "delete")
        wait_for_bubbles(page, 2)
        assert "first line" not in chat_texts(page)
        expect(page.locator("#undo-row")).to_contain_text("first line")
        expect(page.locator("#message-panel")).to_be_hidden()  # an action is not a click on the bubble
        page.screenshot(path=str(artifacts / "chat-view-undo.png"))
        page.click("#undo-delete")
        wait_for_bubbles(page, 3)
        assert chat_texts(page) == before
        expect(page.locator("#undo-row")).to_be_hidden()

        # Edit opens the message's text; Copy copies the message, not its frame.
        bubble_action(page, 1, "edit")
        expect(page.locator("#message-edit textarea")).to_have_value("first line")
        bubble_action(page, 2, "copy")
        expect(page.locator(BUBBLES).nth(2).locator(".act-copy")).to_have_text("Copied")
        assert page.evaluate("() => navigator.clipboard.readText()") == before[2]
        # The latest reply swipes from its own bubble: right past the last version writes a new one.
        bubble_action(page, 2, "swipe-right")
        expect(page.locator(BUBBLES).nth(2).locator(".hearth-swipes")).to_have_text("2/2", timeout=60_000)
        page.wait_for_function(LIVE_HIDDEN, timeout=60_000)

        # Every chat is in the list with its character, and typing finds them.
        page.click("#session-list input")
        listed = options(page)
        assert any(" · Aqua · " in o for o in listed) and any(" · Assistant · " in o for o in listed)
        search(page, "#session-list", "aqua")
        expect(page.get_by_role("option").filter(has_text=" · Assistant · ")).to_have_count(0)
        found = options(page)
        assert found and all(" · Aqua · " in o for o in found), found
        page.screenshot(path=str(artifacts / "chat-view-chat-list.png"))
        search(page, "#session-list", "assistant")
        expect(page.get_by_role("option").filter(has_text=" · Aqua · ")).to_have_count(0)
        page.get_by_role("option").first.click()
        expect(page.locator("#character-choice input")).to_have_value("Assistant (no character)")
        wait_for_bubbles(page, 2)
        assert chat_texts(page)[0] == "hello there"
        context.close()


@pytest.mark.gemma
def test_a_newcomer_sees_the_model_the_primer_and_the_bundled_model_answers(
    tmp_path: Path, artifacts: Path
) -> None:
    primer = json.loads((ROOT / "presets" / "formats" / "plain.json").read_text())["default_system"]
    with chromium() as browser, hearth_server(tmp_path / "data", "--n-ctx", "2048") as url:
        page = open_app(browser, url)

        # The bundled model is named, called a tiny demo, and Models is one click away.
        expect(page.locator("#model-note")).to_contain_text("Gemma 3 270M (bundled)")
        expect(page.locator("#model-note")).to_contain_text("tiny demo model")
        # The system prompt box shows what is sent while it is empty: the format's primer.
        page.get_by_text("Prompt", exact=True).click()
        expect(page.locator("#system-prompt textarea")).to_have_value(primer)
        page.screenshot(path=str(artifacts / "chat-view-newcomer.png"), full_page=True)
        page.fill("#message textarea", "Write a short poem about the sea.")
        page.keyboard.press("Enter")
        wait_for_bubbles(page, 2, timeout=180_000)
        expect(page.locator("#send")).to_be_visible()
        page.wait_for_function(LIVE_HIDDEN)
        assert page.evaluate(ROLES) == ["user", "bot"] and chat_texts(page)[1]

        # The link to Models opens that tab.
        page.click("#to-models")
        expect(page.get_by_role("tab", name="Models", selected=True)).to_be_visible()
        expect(page.locator("#model-summary")).to_be_visible()
        page.close()

        # On a phone, the chat and its message box are on the first screen; the sidebar
        # is one tap away.
        phone = load(browser.new_page(viewport=PHONE), url)
        box = phone.locator("#message").bounding_box()
        send = phone.locator("#send").bounding_box()
        assert box is not None and send is not None
        assert box["y"] + box["height"] <= PHONE["height"] and send["y"] + send["height"] <= PHONE["height"]
        expect(phone.locator("#chat-sidebar")).to_be_hidden()
        phone.screenshot(path=str(artifacts / "chat-view-phone.png"))
        phone.click("#menu-toggle")
        expect(phone.locator("#session-list")).to_be_visible()
        phone.screenshot(path=str(artifacts / "chat-view-phone-menu.png"))
        phone.click("#menu-toggle")
        expect(phone.locator("#chat-sidebar")).to_be_hidden()

        # The light/dark switch, remembered across a reload.
        dark = "() => document.body.classList.contains('dark')"
        assert phone.evaluate(dark) is False
        phone.click("#theme-toggle")
        assert phone.evaluate(dark) is True
        load(phone)
        phone.wait_for_function(dark)
        phone.screenshot(path=str(artifacts / "chat-view-phone-dark.png"))
        phone.click("#theme-toggle")
        load(phone)
        assert phone.evaluate(dark) is False
        assert re.search(r"light|dark", phone.evaluate("() => localStorage.getItem('hearth-theme')") or "")


def test_send_turns_into_stop_and_enter_waits_while_the_model_writes(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path
) -> None:
    """A stand-in model that writes a word every half second: Stop always lands mid-reply."""
    slow = ThinkingServer(delay=0.5, pieces=[" The", " sea", " is", " wide", "."] * 4)
    try:
        with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(tiny_gguf)) as url:
            page = open_app(browser, url)
            connect_remote(page, slow.url, "thinker")
            page.fill("#message textarea", "Write a very long poem about the sea, verse after verse.")
            page.keyboard.press("Enter")
            expect(page.locator("#stop")).to_be_visible(timeout=30_000)
            expect(page.locator("#send")).to_be_hidden()
            wait_for_words(page)
            page.fill("#message textarea", "are you still there?")
            page.keyboard.press("Enter")
            page.screenshot(path=str(artifacts / "chat-view-stop.png"))
            page.click("#stop")
            expect(page.locator("#send")).to_be_visible(timeout=60_000)
            expect(page.locator("#stop")).to_be_hidden()
            page.wait_for_function(LIVE_HIDDEN)
            assert page.evaluate(ROLES) == ["user", "bot"]  # the reply is saved; nothing came before it
            assert chat_texts(page)[0].startswith("Write a very long poem")
            assert chat_texts(page)[1].startswith("The") and len(chat_texts(page)[1]) < 80  # cut short
            assert page.input_value("#message textarea") == "are you still there?"  # kept, not sent
            assert "still writing" not in page.inner_text("body")  # nor tried: Enter was ignored
            page.locator("#message textarea").press("Enter")  # now it goes, and gets its own reply
            wait_for_bubbles(page, 4, timeout=60_000)
            expect(page.locator("#send")).to_be_visible()
            page.wait_for_function(LIVE_HIDDEN)
            assert live_text(page) == ""
            assert page.evaluate(ROLES) == ["user", "bot", "user", "bot"]
            assert chat_texts(page)[2] == "are you still there?"
    finally:
        slow.stop()
