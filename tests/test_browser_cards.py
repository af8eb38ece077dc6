"""Cards and chat files in a real browser: CHARX export, assets in PNG export, importing
a card twice, and an imported SillyTavern chat finding its character."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from browser import chromium, hearth_server, open_app
from store.cards import import_card
from store.cards.png import read_png

pytestmark = pytest.mark.browser

HAPPY = b"RIFF\x10\x00\x00\x00WEBPVP8 happy-face"


def luna_charx(path: Path) -> Path:
    """A V3 CHARX with an emotion picture besides its icon, as RisuAI writes them."""
    card = {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": "Luna", "description": "A moon spirit.", "personality": "", "scenario": "",
            "first_mes": "The moon rises.", "mes_example": "", "creator_notes": "Made for the test.",
            "system_prompt": "", "post_history_instructions": "", "alternate_greetings": [], "tags": [],
            "creator": "", "character_version": "", "extensions": {}, "group_only_greetings": [],
            "assets": [
                {"type": "emotion", "uri": "embeded://assets/emotion/images/happy.webp", "name": "happy",
                 "ext": "webp"},
            ],
        },
    }  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("card.json", json.dumps(card))
        archive.writestr("assets/emotion/images/happy.webp", HAPPY)
    path.write_bytes(buffer.getvalue())
    return path


def upload(page: Page, button: str, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.click(button)
    chooser.value.set_files(str(path))


def download(page: Page, button: str, suffix: str) -> bytes:
    """Press an export button and fetch the file it offers (a new one: its name ends with `suffix`)."""
    page.click(button)
    link = page.locator(f"#download a[href$='.{suffix}']").first
    expect(link).to_be_visible(timeout=30_000)
    with page.expect_download() as info:
        link.click()
    return Path(info.value.path()).read_bytes()


def toast(page: Page, text: str) -> Locator:
    return page.locator("[data-testid='toast-body']").filter(has_text=text).first


def character_options(page: Page) -> list[str]:
    page.click("#character-choice input")
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return [o.replace("✓", "").strip() for o in options]  # the picked one carries a check mark


def test_charx_export_png_assets_reimport_and_chat_owner(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path, third_party: Path
) -> None:
    charx = luna_charx(tmp_path / "luna.charx")
    with (
        chromium() as browser,
        hearth_server(tmp_path / "data", "--model", str(tiny_gguf), "--n-ctx", "2048") as url,
    ):
        page = open_app(browser, url)
        upload(page, "#import-card", charx)
        expect(page.locator("#character-choice input")).to_have_value("Luna", timeout=30_000)

        # CHARX out: the emotion picture is in the archive again.
        page.get_by_text("Character editor", exact=True).click()
        exported = import_card(download(page, "#export-charx", "charx"), "luna.charx")
        assert exported.card.name == "Luna"
        assert HAPPY in [f.data for f in exported.asset_files]

        # PNG out: the picture travels in the PNG's asset chunk, no `embeded://` points at
        # nothing, and the user is told CHARX is the form made for assets.
        png = download(page, "#export-png", "png")
        ccv3 = json.loads(read_png(png).cards["ccv3"].decode())
        uris = [asset["uri"] for asset in ccv3["data"]["assets"]]
        assert not [uri for uri in uris if uri.startswith("embeded://")], uris
        assert import_card(png, "luna.png").asset_files[0].data == HAPPY
        expect(toast(page, "CHARX")).to_be_visible()
        chara = json.loads(read_png(png).cards["chara"].decode())
        assert chara["data"]["creator_notes"].startswith("[Hearth: this is a V3 character card")

        # The same card again: opened, not stored twice.
        upload(page, "#import-card", charx)
        expect(
            page.locator("[data-testid='toast-body']").filter(has_text="already here").first
        ).to_be_visible(timeout=30_000)
        assert character_options(page).count("Luna") == 1

        # A SillyTavern chat with Aqua goes to Aqua, though Luna is open.
        upload(page, "#import-card", third_party / "cards" / "Aqua.png")
        expect(page.locator("#character-choice input")).to_have_value("Aqua", timeout=30_000)
        page.locator("#character-choice input").click()
        page.get_by_role("option", name="Luna").click()
        expect(page.locator("#character-choice input")).to_have_value("Luna", timeout=30_000)
        page.get_by_text("Chat files", exact=True).click()
        upload(page, "#import-chat", third_party / "chats" / "1673181146000.jsonl")
        expect(page.locator("#character-choice input")).to_have_value("Aqua", timeout=30_000)
        expect(page.locator("#attach-row")).to_be_hidden()

        # A chat with Megumin, whom nobody here is: imported on its own, and Hearth asks.
        upload(page, "#import-chat", third_party / "chats" / "1673323621108.jsonl")
        expect(page.locator("#attach-row")).to_be_visible(timeout=30_000)
        expect(page.locator("#attach-note")).to_contain_text("no character here has that name")
        expect(page.locator("#character-choice input")).to_have_value("Assistant (no character)")
        page.screenshot(path=str(artifacts / "cards-chat-attach.png"), full_page=True)
        page.locator("#attach-choice input").click()
        page.get_by_role("option", name="Luna").click()
        page.click("#attach-chat")
        expect(page.locator("#character-choice input")).to_have_value("Luna", timeout=30_000)
        expect(page.locator("#attach-row")).to_be_hidden()
        assert re.search(r"Megumin|Imported", page.locator("#session-list input").input_value())
