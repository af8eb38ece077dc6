"""The Models tab in a real browser, against a local stand-in for Hugging Face."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import Page, expect

from browser import LIVE_HIDDEN, chat_texts, chromium, hearth_server, open_app, watch_status
from hf_server import MYTHO, FakeHub, FakeRepo, sample_repos

pytestmark = pytest.mark.browser

SPRING = "TheBloke/Spring-Dragon-GGUF"


@pytest.fixture
def fake_hub(tiny_gguf: Path) -> Iterator[FakeHub]:
    tiny = tiny_gguf.read_bytes()
    spring = FakeRepo(SPRING, {"spring-dragon.Q4_K_M.gguf": tiny, "spring-dragon.Q2_K.gguf": tiny[:90_000]})
    hub = FakeHub([*sample_repos(tiny), spring]).start()
    hub.seconds_per_block = 0.08  # slow enough to watch the progress
    yield hub
    hub.stop()


def chat_reply(page: Page, text: str) -> None:
    page.fill("#message textarea", text)
    page.click("#send")
    page.wait_for_function(
        """() => document.querySelectorAll('#history [data-testid="bot"]').length > 0""", timeout=60_000
    )
    page.wait_for_function(LIVE_HIDDEN)


def test_search_download_load_and_chat(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path, fake_hub: FakeHub
) -> None:
    env = {"HF_ENDPOINT": fake_hub.endpoint}
    args = ("--model", str(tiny_gguf), "--n-ctx", "2048")
    with chromium() as browser, hearth_server(tmp_path / "data", *args, env=env) as url:
        page = open_app(browser, url)
        page.get_by_role("tab", name="Models").click()
        page.get_by_role("tab", name="Search Hugging Face").click()
        page.fill("#hub-query textarea", "mythomax")
        page.click("#hub-search")
        expect(page.locator("#hub-status")).to_contain_text("repositories found", timeout=30_000)
        expect(page.locator("#hub-results input")).to_have_value(
            f"{MYTHO} · 50.0k downloads · 300 likes · 2023-10-01"
        )
        expect(page.locator("#hub-files input")).to_have_value(
            re.compile(r"^Q4_K_M · 438\.7 kB · fits · mythomax-l2-13b\.Q4_K_M\.gguf"), timeout=30_000
        )
        expect(page.locator("#hub-fit")).to_contain_text("GB free")
        # Pick another file, then the one to download: the choice and its fit follow.
        page.locator("#hub-files input").click()
        page.get_by_role("option", name=re.compile(r"^Q2_K · 150\.0 kB")).click()
        expect(page.locator("#hub-files input")).to_have_value(re.compile(r"^Q2_K · 150\.0 kB · fits"))
        page.locator("#hub-files input").click()
        page.get_by_role("option", name=re.compile(r"^Q4_K_M · ")).click()
        expect(page.locator("#hub-files input")).to_have_value(re.compile(r"^Q4_K_M · 438\.7 kB"))
        page.click("#hub-download")
        seen = watch_status(page, "#hub-status", "/s")
        page.screenshot(path=str(artifacts / "models-hub-downloading.png"), full_page=True)
        seen += watch_status(page, "#hub-status", "Loaded")
        assert any("Downloading" in line and " of " in line and "/s" in line for line in seen), seen
        assert "Alpaca format" in seen[-1]
        expect(page.get_by_role("tab", name="Chat")).to_have_attribute("aria-selected", "true")
        chat_reply(page, "hello from the downloaded model")
        assert chat_texts(page)[0] == "hello from the downloaded model"
        assert len(chat_texts(page)) == 2
        assert (
            tmp_path / "data" / "models" / "TheBloke" / "MythoMax-L2-13B-GGUF" / "mythomax-l2-13b.Q4_K_M.gguf"
        ).is_file()

        # One click in the catalog: download the recommended quant, load it, open its tab.
        page.get_by_role("tab", name="Models").click()
        page.get_by_role("tab", name="Recommended").click()
        plan = re.compile(r"Memory: CPU only, .* GB free")
        expect(page.locator("#card-spring-dragon-13b")).to_contain_text(plan)
        page.click("#get-spring-dragon-13b")
        seen = watch_status(page, "#status-spring-dragon-13b", "Loaded")
        assert any("Downloading" in line for line in seen), seen
        expect(page.locator("#model-summary")).to_contain_text(
            "Plain transcript format · suits the Adventure tab", timeout=30_000
        )  # the summary refreshes after the load, which takes a while on a busy machine
        expect(page.get_by_role("tab", name="Adventure")).to_have_attribute("aria-selected", "true")
        page.get_by_role("tab", name="Models").click()
        expect(page.locator("#card-spring-dragon-13b")).to_contain_text("installed")
        page.get_by_role("tab", name="Installed").click()
        expect(page.locator("#library-table")).to_contain_text("Spring Dragon")
        page.screenshot(path=str(artifacts / "models-installed.png"), full_page=True)


def test_cancel_keeps_the_bytes_and_the_next_download_resumes(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path, fake_hub: FakeHub
) -> None:
    fake_hub.seconds_per_block = 0.5  # slow enough to press Cancel mid-way
    env = {"HF_ENDPOINT": fake_hub.endpoint}
    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(tiny_gguf), env=env) as url:
        page = open_app(browser, url)
        page.get_by_role("tab", name="Models").click()
        page.get_by_role("tab", name="Search Hugging Face").click()
        page.fill("#hub-query textarea", "mythomax")
        page.click("#hub-search")
        expect(page.locator("#hub-files input")).to_have_value(re.compile(r"^Q4_K_M"), timeout=30_000)
        page.click("#hub-download")
        watch_status(page, "#hub-status", "/s")
        page.click("#hub-cancel")
        watch_status(page, "#hub-status", "Download cancelled")
        page.screenshot(path=str(artifacts / "models-hub-cancelled.png"), full_page=True)
        folder = tmp_path / "data" / "models" / "TheBloke" / "MythoMax-L2-13B-GGUF"
        partial = [p for p in folder.iterdir() if p.name.endswith(".part")]
        assert partial and 0 < partial[0].stat().st_size < tiny_gguf.stat().st_size
        assert not (folder / "mythomax-l2-13b.Q4_K_M.gguf").exists()

        fake_hub.seconds_per_block = 0.0
        page.click("#hub-download")
        watch_status(page, "#hub-status", "Loaded")
        assert (folder / "mythomax-l2-13b.Q4_K_M.gguf").read_bytes() == tiny_gguf.read_bytes()
        ranges = [r.headers.get("range", "") for r in fake_hub.seen("GET") if "Q4_K_M" in r.path]
        assert any(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in ranges), ranges
    # Nothing but Hub calls reached the Hub: no telemetry, no usage analytics.
    assert not [r.path for r in fake_hub.requests if "telemetry" in r.path or "analytics" in r.path]


def test_a_catalog_download_shows_progress_failure_and_cancel_on_its_card(
    tmp_path: Path, artifacts: Path, tiny_gguf: Path, fake_hub: FakeHub
) -> None:
    fake_hub.corrupt(f"{SPRING}/spring-dragon.Q4_K_M.gguf")  # the checksum will not match
    fake_hub.seconds_per_block = 0.5  # slow enough to see it downloading on a busy machine
    env = {"HF_ENDPOINT": fake_hub.endpoint}
    with chromium() as browser, hearth_server(tmp_path / "data", "--model", str(tiny_gguf), env=env) as url:
        page = open_app(browser, url)
        page.get_by_role("tab", name="Models").click()
        page.get_by_role("tab", name="Recommended").click()
        status, cancel = page.locator("#status-spring-dragon-13b"), page.locator("#cancel-spring-dragon-13b")
        page.click("#get-spring-dragon-13b")
        seen = watch_status(page, "#status-spring-dragon-13b", "/s")
        expect(cancel).to_be_visible()  # Cancel is on the card while the bytes arrive
        seen += watch_status(page, "#status-spring-dragon-13b", "Failed")
        assert any("Downloading" in line and "%" in line for line in seen), seen
        # The card says how it ended, and nothing says it is still downloading.
        expect(status).to_contain_text("Failed:")
        expect(status).not_to_contain_text("Downloading")
        expect(cancel).to_be_hidden()
        status.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "models-catalog-failed.png"))

        # Cancel on another card: its line says so, and its Cancel goes away.
        fake_hub.seconds_per_block = 1.0  # slow enough to press Cancel mid-way on a busy machine
        page.locator("#card-mythomax-l2-13b").scroll_into_view_if_needed()
        page.click("#get-mythomax-l2-13b")
        watch_status(page, "#status-mythomax-l2-13b", "/s")
        page.click("#cancel-mythomax-l2-13b")
        watch_status(page, "#status-mythomax-l2-13b", "Download cancelled")
        expect(page.locator("#cancel-mythomax-l2-13b")).to_be_hidden()
        expect(page.locator("#status-mythomax-l2-13b")).not_to_contain_text("Downloading")
        expect(status).to_contain_text("Failed:")  # each card keeps its own line

        # A model too big for the free memory says so on its button, for the quant picked.
        page.locator("#quant-airoboros-l2-70b input").click()
        page.get_by_role("option", name=re.compile(r"^Q2_K")).click()
        expect(page.locator("#quant-airoboros-l2-70b input")).to_have_value(re.compile(r"^Q2_K"))
        card_text = re.compile(r"about (29|3\d)\.\d GB of")  # Q2_K's 29.3 GB and its cache, not Q4_K_M's 43
        expect(page.locator("#card-airoboros-l2-70b")).to_contain_text(card_text, timeout=30_000)
        card = page.inner_text("#card-airoboros-l2-70b")
        needed = float(re.search(r"about ([\d.]+) GB of", card)[1])  # type: ignore[index]
        if needed * 1e9 > psutil.virtual_memory().available:  # true below ~30 GB free
            expect(page.locator("#get-airoboros-l2-70b")).to_have_text(
                re.compile(rf"^\s*Download anyway \(needs ~{needed} GB, you have [\d.]+ GB free\)\s*$")
            )
        page.locator("#card-airoboros-l2-70b").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "models-catalog-too-big.png"))
