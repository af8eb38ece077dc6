"""The "Inspect prompt" panel in a real browser, on the tiny model: after a reply it shows
the parts of the prompt that was sent, with a total equal to the context line's, and the
exact text, inert."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bench.long_chat import seed_chat
from browser import LIVE_HIDDEN, chromium, hearth_server, open_app, wait_for_bubbles
from store.records import Message

pytestmark = pytest.mark.browser

MESSAGE = "hello <b>world</b> **the end**"


ROWS = "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))"


def parts_table(page: Page, prefix: str) -> list[list[str]]:
    """The table's rows (Gradio draws them as grid rows), without the header."""
    rows = page.eval_on_selector_all(f"#{prefix}-inspect-parts [role=row]", ROWS)
    return [row for row in rows if row]


def open_inspector(page: Page, prefix: str) -> list[list[str]]:
    """Open the panel (or press Refresh when it is open) and wait for its Total row."""
    panel = page.locator(f"#{prefix}-inspect")
    if page.locator(f"#{prefix}-inspect-refresh").is_visible():
        page.click(f"#{prefix}-inspect-refresh")
    else:
        panel.get_by_text("Inspect prompt").first.click()
    page.wait_for_function(
        f"""() => Array.from(document.querySelectorAll('#{prefix}-inspect-parts [role=gridcell]'))
            .some(c => c.innerText.trim() === 'Total')""",
        timeout=30_000,
    )
    return parts_table(page, prefix)


SHOWS_TEXT = (
    "(text) => (document.querySelector('#chat-inspect-text .cm-content')?.innerText || '').includes(text)"
)


def thinking_setting(data_dir: Path) -> object:
    """The one chat's thinking setting, as the server last wrote its record (atomically)."""
    [path] = (data_dir / "sessions").glob("*/session.json")
    tables = json.loads(path.read_text())
    return next((doc.get("extra", {}).get("thinking") for doc in tables["session"].values()), None)


def tokens(cell: str) -> int:
    return int(cell.replace(",", ""))


def prompt_text(page: Page, prefix: str) -> str:
    return page.inner_text(f"#{prefix}-inspect-text .cm-content")


def test_the_inspector_shows_the_parts_and_the_text_after_a_reply(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path
) -> None:
    with (
        chromium() as browser,
        hearth_server(tmp_path / "data", "--model", str(tiny_gguf), "--n-ctx", "2048") as url,
    ):
        page = open_app(browser, url)
        page.fill("#message textarea", MESSAGE)
        page.click("#send")
        wait_for_bubbles(page, 2)
        page.wait_for_function(LIVE_HIDDEN, timeout=60_000)
        expect(page.locator("#context-status")).to_contain_text("prompt ", timeout=30_000)
        status = page.inner_text("#context-status")
        prompt_tokens = int(re.search(r"prompt (\d+)", status).group(1))  # type: ignore[union-attr]

        rows = open_inspector(page, "chat")
        names = [row[0] for row in rows]
        assert names[-1] == "Total" and tokens(rows[-1][1]) == prompt_tokens
        assert sum(tokens(row[1]) for row in rows[:-1]) == prompt_tokens
        assert "System prompt" in names and "Reply prefix" in names
        assert any(name.startswith("Chat history (1 of 1 messages") for name in names)
        summary = page.inner_text("#chat-inspect-summary")
        assert f"Prompt: {prompt_tokens} tokens" in summary and "reused from the KV cache" in summary
        text = prompt_text(page, "chat")
        assert MESSAGE in text  # the exact text: no Markdown, no HTML
        assert page.locator("#chat-inspect-text b").count() == 0
        choice = page.input_value("#chat-inspect-choice input")
        assert choice.startswith("Reply 2:")
        page.screenshot(path=str(artifacts / "inspect-chat.png"), full_page=True)

        # The next prompt holds the reply too, and its parts add up as well.
        page.click("#chat-inspect-choice input")
        page.get_by_role("option", name="Next prompt (not sent yet)").click()
        expect(page.locator("#chat-inspect-summary")).to_contain_text("not sent yet", timeout=30_000)
        rows = parts_table(page, "chat")
        assert sum(tokens(row[1]) for row in rows[:-1]) == tokens(rows[-1][1]) > prompt_tokens

        # Story: the token line adds up, and the inspector shows the prompt of the run.
        page.get_by_role("tab", name="Story").click()
        expect(page.locator("#story-tokens")).to_contain_text("Prompt", timeout=60_000)
        page.fill("#story-text textarea", "The keeper counted the ships.\nThe lamp was lit.")
        page.locator("#story-text textarea").blur()
        page.click("#story-generate")
        page.wait_for_function(
            "() => /Story [1-9]/.test(document.querySelector('#story-tokens')?.innerText ?? '')",
            timeout=60_000,
        )
        expect(page.locator("#story-generate")).to_be_enabled(timeout=60_000)
        line = page.inner_text("#story-tokens")
        counts = re.search(
            r"Memory (\d+) · World info (\d+) · Author's note (\d+) · Story (\d+) of \d+.* · Prompt (\d+) /",
            line,
        )
        assert counts is not None, line
        *parts, total = (int(n) for n in counts.groups())
        assert sum(parts) == total
        kept, whole = re.search(r"Story (\d+) of (\d+)", line).groups()  # type: ignore[union-attr]
        assert kept == whole  # no line was left out
        rows = open_inspector(page, "story")
        assert [row[0] for row in rows if row[0].startswith("Story")]
        assert sum(tokens(row[1]) for row in rows[:-1]) == tokens(rows[-1][1])
        assert prompt_text(page, "story").startswith("The keeper counted the ships.")
        page.screenshot(path=str(artifacts / "inspect-story.png"), full_page=True)


def test_a_thinking_reply_shows_folded_copies_its_answer_and_stays_out_of_the_next_prompt(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path
) -> None:
    plan = "They said hello; a greeting back will do."
    seed_chat(
        tmp_path / "data",
        [
            Message("user", "hello", seq=0),
            Message("assistant", f"<think>\n{plan}\n</think>\n\nHello, friend!", seq=1),
        ],
    )
    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(tiny_gguf)) as url:
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, permissions=["clipboard-read", "clipboard-write"]
        )
        page = context.new_page()
        page.goto(url)
        wait_for_bubbles(page, 2, timeout=120_000)
        reply = page.locator("#history [data-testid='bot']").last
        think = reply.locator("details.hearth-think")
        expect(think.locator("summary")).to_have_text("Thought")
        expect(think.locator(".hearth-thinking")).to_be_hidden()  # folded
        think.locator("summary").click()
        expect(think.locator(".hearth-thinking")).to_have_text(plan)
        page.screenshot(path=str(artifacts / "thinking-reply.png"))
        reply.locator(".act-copy").click()
        expect(reply.locator(".act-copy")).to_have_text("Copied")
        assert page.evaluate("() => navigator.clipboard.readText()") == "Hello, friend!"

        page.fill("#message textarea", "and now?")
        page.click("#send")
        wait_for_bubbles(page, 4, timeout=120_000)
        page.wait_for_function(LIVE_HIDDEN, timeout=60_000)
        open_inspector(page, "chat")
        text = prompt_text(page, "chat")
        assert "Hello, friend!" in text and "and now?" in text
        assert plan not in text and "think>" not in text

        # A chat that keeps its thinking sends it back.
        page.get_by_text("Prompt", exact=True).click()
        page.get_by_label("Kept in later prompts").check()
        # Saved before Regenerate is pressed. Read from the file: opening a Store here would
        # sweep the temp files of the server's own writes in flight.
        deadline = time.monotonic() + 30
        while thinking_setting(tmp_path / "data") != "keep":
            assert time.monotonic() < deadline, "the chat's thinking setting was not saved"
            time.sleep(0.1)
        page.click("#regenerate")
        expect(page.locator("#history .hearth-swipes").last).to_have_text("2/2", timeout=60_000)
        page.wait_for_function(LIVE_HIDDEN, timeout=60_000)
        open_inspector(page, "chat")  # Refresh: it shows the earlier prompt until the answer lands
        page.wait_for_function(SHOWS_TEXT, arg=plan, timeout=30_000)
        assert f"<think>\n{plan}\n</think>" in prompt_text(page, "chat")
        context.close()
