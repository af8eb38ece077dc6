"""The Story and Adventure tabs in a real browser, on the tiny model."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser import chromium, connect_remote, hearth_server, open_app
from store.db import Store
from thinking_server import ThinkingServer

pytestmark = pytest.mark.browser

OPENING = "The lighthouse keeper counted the ships every night."
ENDING = " The end."
IDLE = "() => /Story [1-9]/.test(document.querySelector('#story-tokens')?.innerText ?? '')"


def open_tab(page: Page, name: str, tokens: str) -> None:
    """Select a tab and wait for its first load (which fills the token line)."""
    page.get_by_role("tab", name=name).click()
    expect(page.locator(tokens)).to_contain_text("Prompt", timeout=60_000)


def story_text(page: Page) -> str:
    return page.input_value("#story-text textarea")


def wait_story_saved(page: Page, longer_than: int) -> str:
    """Wait until the reply is in the box and the run's follow-up has shown the saved story."""
    page.wait_for_function(
        f"() => document.querySelector('#story-text textarea').value.length > {longer_than}", timeout=60_000
    )
    page.wait_for_function(IDLE, timeout=60_000)
    expect(page.locator("#story-generate")).to_be_enabled()
    return story_text(page)


def wait_until_stored(data_dir: Path, text: str) -> None:
    """Wait for the server to have saved `text` as the only story's text."""
    deadline = time.monotonic() + 30
    while True:
        [summary] = Store(data_dir).stories.list("story")
        if Store(data_dir).stories.get(summary.id).story.full_text() == text:
            return
        assert time.monotonic() < deadline, "the typed text was not saved"
        time.sleep(0.1)


def test_story_generate_retry_undo_and_kobold_files(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path, third_party: Path
) -> None:
    data_dir = tmp_path / "data"
    with chromium() as browser, hearth_server(data_dir, "--model", str(tiny_gguf)) as url:
        page = open_app(browser, url)
        open_tab(page, "Story", "#story-tokens")
        page.fill("#story-text textarea", OPENING)
        page.click("#story-generate")
        first = wait_story_saved(page, len(OPENING))
        assert first.startswith(OPENING) and len(first) > len(OPENING)

        page.click("#story-retry")
        expect(page.locator("#story-versions")).to_be_visible(timeout=60_000)
        expect(page.locator("#story-versions input")).to_have_value(re.compile(r"^Version 2 of 2"))
        second = story_text(page)
        assert second.startswith(OPENING)

        page.click("#story-undo")  # back to the first continuation
        expect(page.locator("#story-text textarea")).to_have_value(first, timeout=30_000)
        page.click("#story-undo")  # and to the opening alone
        expect(page.locator("#story-text textarea")).to_have_value(OPENING, timeout=30_000)
        page.click("#story-redo")
        expect(page.locator("#story-text textarea")).to_have_value(first, timeout=30_000)
        page.screenshot(path=str(artifacts / "story-tab.png"), full_page=True)

        # What the writer types is saved as they type: closing the page at once loses nothing.
        page.locator("#story-text textarea").press_sequentially(ENDING)
        wait_until_stored(data_dir, first + ENDING)
        page.reload()
        page.get_by_role("tab", name="Story").click()
        expect(page.locator("#story-text textarea")).to_have_value(first + ENDING, timeout=30_000)

        # A KoboldAI save opens as a new story, and exports again as a Kobold Lite save.
        page.get_by_text("Files", exact=True).first.click()
        with page.expect_file_chooser() as chooser:
            page.click("#story-import")
        chooser.value.set_files(str(third_party / "stories" / "sample_story.json"))
        expect(page.locator("#story-text textarea")).to_have_value(
            re.compile(r"^Niko the kobold"), timeout=30_000
        )
        expect(page.locator("#story-list input")).to_have_value("sample_story")
        page.click("#story-export")
        link = page.locator("#story-download a").first
        expect(link).to_be_visible(timeout=30_000)
        with page.expect_download() as download_info:
            link.click()
        saved = json.loads(Path(download_info.value.path()).read_text())
        original = json.loads((third_party / "stories" / "sample_story.json").read_text())
        assert saved["prompt"] == original["prompt"] and saved["memory"] == original["memory"]
        assert [a for a in saved["actions"]] == original["actions"]

    [summary] = [s for s in Store(data_dir).stories.list("story") if s.title != "sample_story"]
    story = Store(data_dir).stories.get(summary.id).story
    assert story.full_text() == first + ENDING
    assert [c.origin for c in story.chunks] == ["prompt", "ai", "user"]
    assert second[len(OPENING) :] in story.chunks[1].later  # the retry waits for a redo


def transcript(page: Page) -> str:
    return page.inner_text("#adventure-transcript")


def wait_turn_done(page: Page) -> None:
    """Send is disabled from the moment an action is taken until its reply is saved.
    The box empties when the action is taken, so wait for that first: Send is still
    enabled before the action reaches the server."""
    expect(page.locator("#adventure-input textarea")).to_have_value("", timeout=30_000)
    expect(page.locator("#adventure-send")).to_be_enabled(timeout=60_000)


def test_adventure_scenario_do_say_undo_and_reload(tmp_path: Path, artifacts: Path, tiny_gguf: Path) -> None:
    data_dir = tmp_path / "data"
    with chromium() as browser, hearth_server(data_dir, "--model", str(tiny_gguf)) as url:
        page = open_app(browser, url)
        open_tab(page, "Adventure", "#adventure-tokens")
        page.locator("#scenario input").click()
        page.get_by_role("option", name="The Night Train to Wintermoor").click()
        answer = page.locator(".scenario-answer textarea")
        expect(answer).to_have_count(1, timeout=30_000)
        page.get_by_label("your name").fill("Inspector Quill")
        page.click("#scenario-start")
        expect(page.locator("#adventure-transcript")).to_contain_text(
            "You are Inspector Quill", timeout=30_000
        )

        page.fill("#adventure-input textarea", "open the door")
        page.click("#adventure-send")
        expect(page.locator("#adventure-transcript")).to_contain_text("You open the door.", timeout=30_000)
        wait_turn_done(page)

        page.get_by_text("Say", exact=True).click()
        page.fill("#adventure-input textarea", "is anyone there?")
        page.keyboard.press("Enter")
        expect(page.locator("#adventure-transcript")).to_contain_text(
            'You say "Is anyone there?"', timeout=30_000
        )
        wait_turn_done(page)
        page.screenshot(path=str(artifacts / "adventure-tab.png"), full_page=True)

        # Undo the reply, then the Say; the Do stays.
        before = transcript(page)
        page.click("#adventure-undo")
        page.wait_for_function(
            f"() => document.querySelector('#adventure-transcript').innerText.length < {len(before)}"
        )
        page.click("#adventure-undo")
        expect(page.locator("#adventure-transcript")).not_to_contain_text("Is anyone there", timeout=30_000)
        expect(page.locator("#adventure-transcript")).to_contain_text("You open the door.")
        kept = transcript(page)

        page.reload()
        page.get_by_role("tab", name="Adventure").click()
        expect(page.locator("#adventure-transcript")).to_contain_text("You open the door.", timeout=30_000)
        expect(page.locator("#adventure-list input")).to_have_value("The Night Train to Wintermoor")
        assert transcript(page) == kept

    store = Store(data_dir)
    [summary] = [s for s in store.stories.list("adventure") if s.title.startswith("The Night Train")]
    story = store.stories.get(summary.id).story
    assert "> You open the door." in story.full_text()
    assert "Is anyone there" not in story.full_text()
    assert story.redo_stack  # the undone Say can come back
    assert "Inspector Quill" in story.memory


PHONE = {"width": 390, "height": 844}


def on_first_screen(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"]


def wait_in_view(page: Page, selector: str) -> None:
    """Until `selector` is wholly on screen (the menu scrolls to it; a fraction of a pixel
    above the top is rounding)."""
    page.wait_for_function(
        f"() => {{ const r = document.querySelector('{selector}').getBoundingClientRect();"
        " return r.height > 0 && r.top > -1 && r.bottom <= innerHeight; }"
    )


def test_on_a_phone_each_tab_opens_on_its_work_and_its_list_is_a_tap_away(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path
) -> None:
    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(tiny_gguf)) as url:
        page = browser.new_page(viewport=PHONE)
        page.goto(url)
        page.wait_for_selector("#message textarea", timeout=60_000)
        for tab, work, button in (
            ("story", "#story-text textarea", "#story-generate"),
            ("adventure", "#scenario", "#scenario-start"),
        ):
            open_tab(page, tab.capitalize(), f"#{tab}-tokens")
            # The story, or the adventure's start, and its first button fill the first
            # screen; the list of stories is folded away behind a menu button.
            expect(page.locator(f"#{tab}-sidebar")).to_be_hidden()
            assert on_first_screen(page, work) and on_first_screen(page, button), tab
            assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
            page.screenshot(path=str(artifacts / f"phone-{tab}.png"))
            page.click(f"#{tab}-menu")
            expect(page.locator(f"#{tab}-list")).to_be_visible()
            wait_in_view(page, f"#{tab}-list")
            page.screenshot(path=str(artifacts / f"phone-{tab}-menu.png"))
            page.click(f"#{tab}-menu")
            expect(page.locator(f"#{tab}-sidebar")).to_be_hidden()
        page.get_by_role("tab", name="Models").click()
        expect(page.locator("#model-summary")).to_be_visible(timeout=30_000)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(artifacts / "phone-models.png"))
        # Wide, there is no menu: the list stands beside the story.
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.get_by_role("tab", name="Story").click()
        expect(page.locator("#story-list")).to_be_visible()
        expect(page.locator("#story-menu")).to_be_hidden()


@pytest.fixture
def writer() -> Iterator[ThinkingServer]:
    """A stand-in model that writes a word every fifth of a second: it always writes
    something, however loaded the machine (the bundled model may end at once, or take a
    minute)."""
    server = ThinkingServer(delay=0.2, pieces=[" The", " fog", " lifted", "."] * 3)
    yield server
    server.stop()


def test_the_story_box_is_read_only_while_the_model_writes_into_it(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path, writer: ThinkingServer
) -> None:
    """The finished text replaces what the box shows: typing meanwhile would be lost."""
    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(tiny_gguf)) as url:
        page = open_app(browser, url)
        connect_remote(page, writer.url, "thinker")
        open_tab(page, "Story", "#story-tokens")
        box = page.locator("#story-text textarea")
        box.fill(OPENING)
        page.click("#story-generate")
        expect(box).to_be_disabled(timeout=30_000)
        page.screenshot(path=str(artifacts / "story-writing.png"))
        wait_story_saved(page, len(OPENING))
        expect(box).to_be_enabled()
        written = story_text(page)
        assert written == OPENING + " The fog lifted." * 3
        box.press("Control+End")
        page.keyboard.type(ENDING)  # the writer's turn again
        expect(box).to_have_value(written + ENDING)
