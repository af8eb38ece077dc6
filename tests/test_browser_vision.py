"""A picture in a real browser: the tiny model with the tiny projector beside it
(`tiny_projector.py`) loads with it; Picture beside Send attaches one, which shows under
the message box, goes with the message, shows in its bubble without a fetch, and reaches
the model (the prompt holds its marker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Request, expect
from test_browser_cards import toast, upload
from test_browser_inspect import open_inspector, prompt_text

from browser import LIVE_HIDDEN, chromium, hearth_server, open_app, wait_for_bubbles
from engine.types import IMAGE_MARKER
from tiny_model import write_tiny_llama
from tiny_projector import write_tiny_projector

pytestmark = pytest.mark.browser


def test_a_picture_goes_with_the_message_to_a_model_that_sees(tmp_path: Path, artifacts: Path) -> None:
    folder = tmp_path / "llava"
    folder.mkdir()
    model = write_tiny_llama(folder / "tiny-llava.gguf")
    write_tiny_projector(folder / "mmproj-tiny-f16.gguf")
    photo = tmp_path / "lighthouse.png"
    Image.new("RGB", (120, 90), (30, 90, 200)).save(photo)
    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_bytes(b"these are notes, not pixels")

    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(model)) as url:
        page = open_app(browser, url)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(_outside(request, url)))

        upload(page, "#attach-picture", not_a_picture)
        expect(toast(page, "not a picture")).to_be_visible(timeout=30_000)
        expect(page.locator("#attached-picture")).to_be_hidden()

        upload(page, "#attach-picture", photo)
        expect(page.locator("#attached-picture img")).to_be_visible(timeout=30_000)
        page.click("#remove-picture")  # changed my mind, then attached it again
        expect(page.locator("#attached-picture")).to_be_hidden()
        upload(page, "#attach-picture", photo)
        expect(page.locator("#attached-picture img")).to_be_visible(timeout=30_000)
        expect(page.locator("#remove-picture")).to_be_visible()
        page.fill("#message textarea", "What is in this picture?")
        page.screenshot(path=str(artifacts / "vision-attached.png"))
        page.click("#send")
        wait_for_bubbles(page, 2)
        page.wait_for_function(LIVE_HIDDEN, timeout=60_000)
        expect(page.locator("#attached-picture")).to_be_hidden()  # it went with the message

        mine = page.locator("#history [data-testid='user']").last
        shown = mine.locator("img.hearth-picture")
        expect(shown).to_be_visible()
        assert (shown.get_attribute("src") or "").startswith("data:image/png;base64,")
        width = page.evaluate("(img) => img.naturalWidth", shown.element_handle())
        assert width == 120
        page.screenshot(path=str(artifacts / "vision-chat.png"), full_page=True)

        open_inspector(page, "chat")
        text = prompt_text(page, "chat")
        assert f"{IMAGE_MARKER}\nWhat is in this picture?" in text
        assert [r for r in requests if r] == []  # nothing was fetched from anywhere else


def _outside(request: Request, url: str) -> str:
    return "" if request.url.startswith((url, "data:", "blob:")) else request.url

