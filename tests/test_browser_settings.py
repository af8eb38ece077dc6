"""Issue 14 in a real browser: what a chat keeps, what a new one starts with, which chat the
app reopens, how a mistake is told, saved presets in every tab, and typing into tables."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from browser import (
    chromium,
    free_port,
    hearth_server,
    send_and_wait,
)
from store.db import Store
from store.stories import Story

pytestmark = pytest.mark.browser

KEEPER = "You are a lighthouse keeper."
# A user who types the moment Prompt opens: Gradio builds the box only then, and a frame
# later sets it to the value the server had sent, over what was typed (test_chat_controls
# lost its system prompt so, once in a while).
TYPE_AT_ONCE = (
    "new MutationObserver((_, watch) => {"
    "  const box = document.querySelector('#system-prompt textarea');"
    "  if (!box) return;"
    "  watch.disconnect();"
    "  queueMicrotask(() => {"  # after the page's own watchers have seen the box
    "    box.focus(); box.select();"
    f"    document.execCommand('insertText', false, '{KEEPER}');"
    "  });"
    "}).observe(document, {childList: true, subtree: true});"
)


def open_page(context: BrowserContext, url: str) -> Page:
    """A page of the app in `context` (whose localStorage persists between its pages)."""
    page = context.new_page()
    page.goto(url)
    page.wait_for_function(
        "() => (document.querySelector('#context-status')?.innerText || '').includes('Context:')",
        timeout=120_000,
    )
    return page


def pick(page: Page, dropdown: str, option: str) -> None:
    page.click(f"{dropdown} input")
    page.get_by_role("option", name=option).first.click()


def eldoria_ticked(page: Page) -> bool:
    box = page.locator("#world-books label", has_text="Eldoria").locator("input")
    return box.count() == 1 and box.is_checked()


def test_a_chat_keeps_its_world_books_a_new_one_starts_afresh_and_the_app_reopens_it(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path, third_party: Path
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    args = (data_dir, "--model", str(tiny_gguf), "--n-ctx", "2048")
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(TYPE_AT_ONCE)
        context.add_init_script(NOTE_WRITES)
        with hearth_server(*args, port=port) as url:
            page = open_page(context, url)
            # A mistake is a warning, not an error.
            page.click("#send")
            expect(page.locator("[data-testid=toast-body].warning")).to_contain_text("Type a message first.")
            assert page.locator("[data-testid=toast-body].error").count() == 0

            page.get_by_text("World books", exact=True).click()
            with page.expect_file_chooser() as chooser:
                page.click("#world-import")
            chooser.value.set_files(str(third_party / "cards" / "Eldoria.json"))
            expect(page.locator("#world-books")).to_contain_text("Eldoria", timeout=30_000)
            page.wait_for_function(
                "() => document.querySelector('#world-books input')?.checked", timeout=10_000
            )

            page.get_by_text("Prompt", exact=True).click()
            expect(page.locator("#system-prompt textarea")).to_have_value(KEEPER)
            pick(page, "#prompt-format", "ChatML")
            page.get_by_text("Sampler", exact=True).click()
            pick(page, "#sampler-preset", "Deterministic")
            send_and_wait(page, "the first chat")
            [first] = [s for s in Store(data_dir).sessions.list() if s.title == "the first chat"]
            assert (first.system_prompt, first.format_id) == (KEEPER, "chatml")

            # New chat: automatic format, default preset; the world book stays on.
            page.click("#new-chat")
            page.wait_for_function(
                "() => document.querySelectorAll('#history .message-content').length === 0"
            )
            expect(page.locator("#sampler-preset input")).to_have_value("Balanced", timeout=10_000)
            assert page.locator("#prompt-format input").input_value().startswith("Auto")
            assert eldoria_ticked(page)
            send_and_wait(page, "the second chat")
            since = float(page.evaluate("() => performance.now()"))
            pick(page, "#session-list", "the first chat")
            expect(page.locator("#history")).to_contain_text("the first chat", timeout=10_000)
            remembered(page, "chat", since)  # the browser has noted it before the reload
            page.screenshot(path=str(artifacts / "settings-chat.png"), full_page=True)

            # Reloaded, the page opens the chat it was in, with the world book ticked.
            page.reload()
            page.wait_for_function(
                "() => (document.querySelector('#context-status')?.innerText || '').includes('Context:')",
                timeout=120_000,
            )
            expect(page.locator("#history")).to_contain_text("the first chat", timeout=10_000)
            page.get_by_text("World books", exact=True).click()
            expect(page.locator("#world-books")).to_contain_text("Eldoria")
            assert eldoria_ticked(page)
            page.close()
        # And so does the app after a restart.
        with hearth_server(*args, port=port) as url:
            page = open_page(context, url)
            expect(page.locator("#history")).to_contain_text("the first chat", timeout=10_000)
            assert "the second chat" not in page.inner_text("#history")
        context.close()


def test_presets_saved_in_story_reach_every_tab_and_table_cells_keep_every_key(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path
) -> None:
    data_dir = tmp_path / "data"
    with chromium() as browser, hearth_server(data_dir, "--model", str(tiny_gguf)) as url:
        page = open_page(browser.new_context(viewport={"width": 1400, "height": 1000}), url)
        page.get_by_role("tab", name="Story").click()
        expect(page.locator("#story-tokens")).to_contain_text("Prompt", timeout=60_000)
        story = page.locator("#story-text").locator("xpath=ancestor::div[@role='tabpanel']")
        story.get_by_text("Sampler", exact=True).click()
        story.get_by_label("Save these settings as").fill("Storyteller")
        story.get_by_role("button", name="Save preset").click()
        expect(story.locator("#sampler-preset input")).to_have_value("Storyteller", timeout=10_000)

        page.get_by_role("tab", name="Adventure").click()
        expect(page.locator("#adventure-tokens")).to_contain_text("Prompt", timeout=60_000)
        adventure = page.locator("#adventure-tokens").locator("xpath=ancestor::div[@role='tabpanel']")
        adventure.get_by_text("Sampler", exact=True).click()
        adventure.locator("#sampler-preset input").click()
        expect(page.get_by_role("option", name="Storyteller")).to_be_visible(timeout=10_000)
        page.keyboard.press("Escape")

        # A row added to the world info, typed into as a writer types.
        page.get_by_role("tab", name="Story").click()
        story.get_by_text("Memory, author's note and world info", exact=True).click()
        table = page.locator("#story-world-info")
        table.get_by_role("button", name="Add row").click()  # what an empty table offers
        page.keyboard.type("ghost", delay=20)
        page.keyboard.press("Enter")
        # The content cell, clicked and typed into at once, as a writer does. The click
        # selects it at once but focuses it a moment later: the first key used to land on
        # the keys cell, focused before, and be lost ("A ghost" became " ghost").
        table.locator("[data-testid=cell-0-3]").click()
        page.keyboard.type("A ghost haunts the mill.", delay=5)
        page.keyboard.press("Enter")
        expect(table).to_contain_text("A ghost haunts the mill.")
        page.screenshot(path=str(artifacts / "settings-world-info.png"), full_page=True)
        deadline = time.monotonic() + 30
        while True:
            [summary] = Store(data_dir).stories.list("story")
            entries = Store(data_dir).stories.get(summary.id).story.world_info
            if entries and entries[0].content:
                break
            assert time.monotonic() < deadline, "the row was not saved"
            time.sleep(0.2)
        (entry,) = entries
        assert (entry.keys, entry.content, entry.enabled) == (("ghost",), "A ghost haunts the mill.", True)
        assert (entry.constant, entry.probability) == (False, 100)


def test_story_and_adventure_reopen_the_one_the_browser_was_last_in(tmp_path: Path, tiny_gguf: Path) -> None:
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    for mode in ("story", "adventure"):  # the older one first: a fresh page opens the newest
        for title in (f"The older {mode}", f"The newer {mode}"):
            store.stories.create(Story(mode=mode, title=title))
            time.sleep(0.01)
    store.close()
    port = free_port()
    args = (data_dir, "--model", str(tiny_gguf))
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_init_script(NOTE_WRITES)
        with hearth_server(*args, port=port) as url:
            page = open_page(context, url)
            for mode in ("story", "adventure"):
                title = story_title(page, mode)
                expect(title).to_have_value(f"The newer {mode}", timeout=30_000)
                since = remembered(page, mode)  # what the page opened on is noted first
                pick(page, f"#{mode}-list", f"The older {mode}")
                expect(title).to_have_value(f"The older {mode}", timeout=10_000)
                remembered(page, mode, since)  # and then the choice
            page.close()
        # Reopened after a restart, each tab shows the one the browser was last in.
        with hearth_server(*args, port=port) as url:
            page = open_page(context, url)
            for mode in ("story", "adventure"):
                expect(story_title(page, mode)).to_have_value(f"The older {mode}", timeout=30_000)
        context.close()


# The page's writes to its storage, and when (the values are encrypted, so not what).
NOTE_WRITES = """
window.hearthWrites = [];
const setItem = Storage.prototype.setItem;
Storage.prototype.setItem = function (key, value) {
    window.hearthWrites.push([key, performance.now()]);
    return setItem.call(this, key, value);
};
"""


def story_title(page: Page, mode: str) -> Locator:
    page.get_by_role("tab", name=mode.capitalize()).click()
    return page.locator(f"#{mode}-title textarea")


# Writes made together (one event's, and the ones it sets off) come within a moment of
# each other; a second without one means the page has noted what it will.
SETTLED = """([key, since]) => {
    const times = window.hearthWrites.filter(([k, t]) => k === key && t > since).map(([, t]) => t);
    return times.length > 0 && performance.now() - Math.max(...times) > 1000;
}"""


def remembered(page: Page, mode: str, since: float = 0.0) -> float:
    """Wait until the page has noted the chat or story its `mode` tab shows ("chat",
    "story", "adventure") after `since`, and is done noting; the time now. The values
    are encrypted, so a late note of an earlier choice cannot be told apart: waiting
    for the notes to settle lets the last one land."""
    page.wait_for_function(SETTLED, arg=[f"hearth-last-{mode}", since], polling=200)
    return float(page.evaluate("() => performance.now()"))
