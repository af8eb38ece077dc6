"""Every Chat and Models control in a real browser, on the tiny model (fast)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser import LIVE_HIDDEN, chat_texts, chromium, hearth_server, open_app
from tiny_model import write_tiny_llama

pytestmark = pytest.mark.browser


def send_and_wait(page: Page, text: str) -> None:
    before = len(chat_texts(page))
    page.fill("#message textarea", text)
    page.click("#send")
    page.wait_for_function(
        f"() => document.querySelectorAll('#history [data-testid=\"bot\"]').length > 0 && "
        f"document.querySelectorAll('#history .message-content').length >= {before + 2}",
        timeout=60_000,
    )
    page.wait_for_function(LIVE_HIDDEN)


def pick(page: Page, dropdown: str, option: str) -> None:
    page.click(f"{dropdown} input")
    page.get_by_role("option", name=option).first.click()


def session_dirs(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "sessions").iterdir() if p.is_dir()]


def stored_session(folder: Path) -> dict[str, object]:
    doc: dict[str, object] = next(iter(json.loads((folder / "session.json").read_text())["session"].values()))
    return doc


def test_installed_models_load_and_bad_files_are_explained(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path
) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "models").mkdir(parents=True)
    junk = tmp_path / "not-a-model.gguf"
    junk.write_text("hello")
    with chromium() as browser, hearth_server(data_dir, "--model", str(tiny_gguf), "--n-ctx", "2048") as url:
        page = open_app(browser, url)
        page.get_by_role("tab", name="Models").click()
        expect(page.locator("#model-summary")).to_contain_text("Loaded: tiny-llama")
        expect(page.locator("#model-summary")).to_contain_text("Plain transcript format")
        page.get_by_role("tab", name="Installed").click()

        page.fill("#model-path textarea", str(junk))
        page.click("#library-add")
        expect(page.get_by_text("is not a GGUF model file")).to_be_visible(timeout=30_000)
        expect(page.locator("#model-summary")).to_contain_text("tiny-llama")  # the old model stays
        page.screenshot(path=str(artifacts / "models-bad-file.png"), full_page=True)

        write_tiny_llama(data_dir / "models" / "second-model.gguf", name="second-model", seed=1)
        page.click("#library-refresh")
        expect(page.locator("#library-table")).to_contain_text("second-model")
        pick(page, "#library-choice", "second-model")
        page.click("#load-model")
        expect(page.locator("#load-status")).to_contain_text("Loaded second-model", timeout=30_000)
        expect(page.locator("#model-summary")).to_contain_text("Loaded: second-model")

        page.click("#library-delete")
        page.click("#library-confirm")
        expect(page.get_by_text("is loaded. Load another model before deleting it.")).to_be_visible()
        assert (data_dir / "models" / "second-model.gguf").is_file()
        page.screenshot(path=str(artifacts / "models-loaded.png"), full_page=True)

        page.click("#unload-model")
        expect(page.locator("#load-status")).to_contain_text("Unloaded second-model", timeout=30_000)
        expect(page.locator("#model-summary")).to_contain_text("No model loaded")
        page.click("#library-delete")
        page.click("#library-confirm")  # no longer loaded: it can go
        expect(page.locator("#load-status")).to_contain_text("Deleted second-model", timeout=30_000)
        assert not (data_dir / "models" / "second-model.gguf").exists()
        # A story model loaded from the list opens the Story tab (named as the catalog's file).
        write_tiny_llama(data_dir / "models" / "LLAMA2-13B-Holodeck-1.Q4_K_M.gguf", name="holodeck", seed=2)
        page.click("#library-refresh")
        pick(page, "#library-choice", "Holodeck")
        page.click("#load-model")
        expect(page.get_by_role("tab", name="Story")).to_have_attribute(
            "aria-selected", "true", timeout=30_000
        )
        page.get_by_role("tab", name="Models").click()
        expect(page.locator("#model-summary")).to_contain_text("suits the Story tab")

        page.get_by_role("tab", name="Chat").click()
        send_and_wait(page, "hello world")
        assert chat_texts(page)[0] == "hello world"


def test_chat_controls(tmp_path: Path, artifacts: Path, tiny_gguf: Path) -> None:
    data_dir = tmp_path / "data"
    with chromium() as browser, hearth_server(data_dir, "--model", str(tiny_gguf), "--n-ctx", "2048") as url:
        page = open_app(browser, url)
        # Prompt settings travel with the chat.
        page.get_by_text("Prompt", exact=True).click()
        page.fill("#system-prompt textarea", "You are a lighthouse keeper.")
        pick(page, "#prompt-format", "ChatML")
        page.get_by_text("Sampler", exact=True).click()
        pick(page, "#sampler-preset", "Deterministic")
        expect(page.locator("#sampler-temperature input[type=number]")).to_have_value("0")
        send_and_wait(page, "first question")
        (folder,) = session_dirs(data_dir)
        session = stored_session(folder)
        assert session["system_prompt"] == "You are a lighthouse keeper."
        assert session["format_id"] == "chatml"
        assert session["sampler"]["preset"] == "Deterministic"  # type: ignore[index]
        assert session["title"] == "first question"

        # Regenerate makes a new version of the reply (kept as a swipe); with the
        # Deterministic preset it is the same text.
        first_reply = chat_texts(page)[1]
        page.click("#regenerate")
        expect(page.locator("#swipe-label")).to_contain_text("Reply 2 of 2", timeout=60_000)
        page.wait_for_function(LIVE_HIDDEN)
        assert len(chat_texts(page)) == 2
        assert chat_texts(page)[1] == first_reply

        # Save the sampler settings as a preset of our own.
        page.fill("#sampler-temperature input[type=number]", "0.42")
        page.press("#sampler-temperature input[type=number]", "Enter")
        page.get_by_label("Save these settings as").fill("Keeper")
        page.get_by_role("button", name="Save preset").click()
        expect(page.locator("#sampler-preset input")).to_have_value("Keeper")

        # New chat, rename, switch back, delete with confirmation.
        page.click("#new-chat")
        page.wait_for_function("() => document.querySelectorAll('#history .message-content').length === 0")
        send_and_wait(page, "second chat")
        assert len(session_dirs(data_dir)) == 2
        page.fill("#rename-box textarea", "Renamed by the test")
        page.click("#rename")
        expect(page.locator("#session-list input")).to_have_value(
            re.compile("^Renamed by the test · "), timeout=10_000
        )
        pick(page, "#session-list", "first question")
        page.wait_for_function(
            "() => (document.querySelector('#history')?.innerText || '').includes('first question')"
        )
        expect(page.locator("#system-prompt textarea")).to_have_value("You are a lighthouse keeper.")
        page.click("#delete-chat")
        page.click("#confirm-delete")
        page.wait_for_function(
            "() => !(document.querySelector('#history')?.innerText || '').includes('first question')"
        )
        assert len(session_dirs(data_dir)) == 1
        expect(page.locator("#session-list input")).to_have_value(re.compile("^Renamed by the test"))
        page.screenshot(path=str(artifacts / "chat-controls.png"), full_page=True)


@pytest.fixture(autouse=True)
def _no_stray_servers() -> None:
    assert shutil.which("chromium") or Path("/usr/bin/chromium").exists()
