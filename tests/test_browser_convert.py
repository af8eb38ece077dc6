"""A legacy GGML file in a real browser: drop it into Models, convert it with progress, chat with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as T
from playwright.sync_api import expect

from browser import LIVE_HIDDEN, chat_texts, chromium, hearth_server, open_app, wait_for_bubbles, watch_status
from ggml_writer import write_llama, write_rwkv

pytestmark = pytest.mark.browser

DROP = "#convert-drop input[type='file']"


def test_drop_convert_load_and_chat(tmp_path: Path, artifacts: Path, tiny_gguf: Path) -> None:
    # The tiny Llama's weights (the shapes of tiny_model.py) in a GGJT v3 Q8_0 file named as the
    # guide's MythoMax link would name it, and an RWKV file that cannot convert.
    legacy = write_llama(tmp_path / "mythomax-l2-13b.ggmlv3.q8_0.bin", weight_type=T.Q8_0)
    rwkv = write_rwkv(tmp_path / "rwkv-4-raven-7b-q5_1.bin")
    spring = write_llama(tmp_path / "spring-dragon.ggmlv3.q4_0.bin", weight_type=T.Q4_0)
    airoboros = write_llama(tmp_path / "airoboros-l2-13b-gpt4-1.4.1.ggmlv3.q4_0.bin", weight_type=T.Q4_0)
    data = tmp_path / "data"
    with chromium() as browser, hearth_server(data, "--model", str(tiny_gguf), "--n-ctx", "2048") as url:
        page = open_app(browser, url)
        page.get_by_role("tab", name="Models").click()
        page.get_by_role("tab", name="Installed").click()

        # A file that cannot convert: the reason and the GGUF alternative, as a toast and in the panel.
        page.set_input_files(DROP, str(rwkv))
        alternative = "Nous-Hermes Llama 2 7B (TheBloke/Nous-Hermes-Llama-2-7B-GGUF)"
        expect(page.locator("#convert-about")).to_contain_text(alternative, timeout=30_000)
        expect(page.locator("[data-testid='toast-body']").first).to_contain_text("RWKV-6", timeout=10_000)
        expect(page.locator("#convert-form")).to_be_hidden()

        # The legacy MythoMax file: described, with the catalog's facts in the form.
        page.set_input_files(DROP, str(legacy))
        about = page.locator("#convert-about")
        expect(about).to_contain_text("GGJT v3", timeout=30_000)
        for fact in ("Q8_0", "Llama, ", "2 layers", "MythoMax L2 13B"):
            expect(about).to_contain_text(fact)
        expect(page.locator("#convert-form")).to_be_visible()
        expect(page.locator("#convert-context input")).to_have_value("4096")
        expect(page.locator("#convert-eps input")).to_have_value("1e-5 · Llama 2")
        expect(page.locator("#convert-format input")).to_have_value("Alpaca")
        page.screenshot(path=str(artifacts / "convert-panel.png"), full_page=True)

        page.click("#convert-start")
        seen = watch_status(page, "#convert-status", "Loaded")
        final = seen[-1].strip()
        assert final.startswith("Converted to mythomax-l2-13b.q8_0.gguf ████████████████████ 100%."), seen
        assert "Loaded MythoMax-L2-13B with the Alpaca format" in final, final
        converted = data / "models" / "converted" / "mythomax-l2-13b.q8_0.gguf"
        assert converted.is_file() and legacy.is_file()  # the original is kept

        # The model it suits opens (Chat), and the converted model answers.
        expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true")
        page.fill("#message textarea", "hello from a model of 2023")
        page.click("#send")
        wait_for_bubbles(page, 2)
        page.wait_for_function(LIVE_HIDDEN, timeout=60_000)
        texts = chat_texts(page)
        assert texts[0] == "hello from a model of 2023" and texts[1].strip()
        page.screenshot(path=str(artifacts / "convert-chat.png"), full_page=True)

        # Back in Models: the conversion is installed and loaded; the form is done.
        page.get_by_role("tab", name="Models").click()
        expect(page.locator("#model-summary")).to_contain_text("Loaded: MythoMax-L2-13B")
        page.get_by_role("tab", name="Installed").click()
        expect(page.locator("#library-table")).to_contain_text("converted")
        expect(page.locator("#convert-form")).to_be_hidden()
        page.screenshot(path=str(artifacts / "convert-installed.png"), full_page=True)

        # A legacy file added by its path opens the panel too, with its own catalog entry's facts,
        # in place of a file dropped before it.
        page.set_input_files(DROP, str(airoboros))
        expect(page.locator("#convert-about")).to_contain_text("Airoboros L2 13B", timeout=30_000)
        page.fill("#model-path textarea", str(spring))
        page.click("#library-add")
        expect(page.locator("#load-status")).to_contain_text("a legacy GGML file: convert it", timeout=30_000)
        expect(page.locator("#convert-about")).to_contain_text("Spring Dragon 13B")
        expect(page.locator("#convert-form")).to_be_visible()
        expect(page.locator("#convert-context input")).to_have_value("2048")
        expect(page.locator("#convert-format input")).to_have_value("Plain transcript")
        expect(page.locator("#library-table")).to_contain_text("legacy GGML: select it to convert")
        expect(page.locator("#convert-drop")).not_to_contain_text("airoboros")
        page.screenshot(path=str(artifacts / "convert-added-by-path.png"), full_page=True)
