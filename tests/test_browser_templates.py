"""A model whose chat template no set of wraps reproduces (gpt-oss's), in a real browser:
the Prompt panel names it, the inspector shows what the template wrote and nothing of
Hearth's own marks, and the reasoning effort the chat picks reaches the template."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from test_browser_inspect import SHOWS_TEXT, open_inspector, prompt_text

from browser import LIVE_HIDDEN, chromium, hearth_server, open_app, wait_for_bubbles
from model_templates import template
from presets.template_format import MARKS
from tiny_model import write_tiny_llama

pytestmark = pytest.mark.browser


def saved_effort(data_dir: Path) -> object:
    """The one chat's reasoning effort, as the server last wrote its record."""
    [path] = (data_dir / "sessions").glob("*/session.json")
    tables = json.loads(path.read_text())
    return next((doc.get("extra", {}).get("reasoning_effort") for doc in tables["session"].values()), None)


def test_a_template_rendered_in_full_with_the_chat_s_reasoning_effort(
    tmp_path: Path, artifacts: Path
) -> None:
    model = write_tiny_llama(tmp_path / "gpt-oss-tiny.gguf", chat_template=template("openai-gpt-oss-120b"))
    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(model)) as url:
        page = open_app(browser, url)
        page.get_by_text("Prompt", exact=True).click()
        expect(page.locator("#prompt-format input")).to_have_value(
            "Auto: Model's own template (rendered in full) "
            "(the model's own chat template, rendered in full for every prompt)",
            timeout=30_000,
        )
        page.fill("#message textarea", "Where is the lighthouse?")
        page.click("#send")
        wait_for_bubbles(page, 2)
        page.wait_for_function(LIVE_HIDDEN, timeout=60_000)
        names = [row[0] for row in open_inspector(page, "chat")]
        assert names[:2] == ["Start token", "Written by the model's template"]
        assert "Reply prefix" in names and any(name.startswith("Chat history") for name in names)
        text = prompt_text(page, "chat")
        assert "<|start|>user<|message|>Where is the lighthouse?<|end|><|start|>assistant" in text
        assert "Reasoning: medium" in text
        assert not set(text) & set(MARKS)
        page.screenshot(path=str(artifacts / "template-in-full.png"), full_page=True)

        page.locator("#reasoning-effort").get_by_label("High").check()
        deadline = time.monotonic() + 30
        while saved_effort(tmp_path / "data") != "high":
            assert time.monotonic() < deadline, "the chat's reasoning effort was not saved"
            time.sleep(0.1)
        page.click("#chat-inspect-choice input")
        page.get_by_role("option", name="Next prompt (not sent yet)").click()
        page.wait_for_function(SHOWS_TEXT, arg="Reasoning: high", timeout=30_000)
        assert "Reasoning: medium" not in prompt_text(page, "chat")
