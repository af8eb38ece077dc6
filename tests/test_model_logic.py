"""The Models tab's logic: catalog cards, Hub search, downloads as jobs, loading, detection."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from catalog.download import Downloader
from catalog.errors import CatalogError
from catalog.hardware import Machine
from catalog.hub import HubClient
from engine.types import LoadOptions
from hf_server import MYTHO, MYTHO_Q4, FakeHub, hub_quiet, hub_server  # noqa: F401
from services.chat import logic as chat_logic
from services.context import AppContext, Settings, create_context
from services.models import logic
from services.models import plan as plans


@pytest.fixture
def ctx(tmp_path: Path, hub_server: FakeHub) -> AppContext:  # noqa: F811
    settings = Settings(
        data_dir=tmp_path / "data", load_model=False, n_ctx=512, hub_endpoint=hub_server.endpoint
    )
    return create_context(settings)


def test_every_catalog_card_renders_offline(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", load_model=False)
    ctx = create_context(settings)
    ctx.hub = HubClient(offline=True)
    for entry in ctx.catalog:
        card = logic.catalog_card(ctx, entry, None, installed=False)
        assert entry.name in card
        if entry.runnable and entry.quants:
            assert "Memory: " in card and "GB free" in card
        if not entry.runnable:
            alternative = ctx.catalog.get(entry.alternative or "")
            verdict = "Convert it to run it" if entry.architecture == "gpt2" else "Cannot run in Hearth"
            assert verdict in card and alternative.name in card
    choices, line = logic.search_repos(ctx, "mythomax", "downloads")
    assert choices == [] and "offline" in line and "catalog is still browsable" in line


def test_search_lists_repos_with_their_numbers(ctx: AppContext) -> None:
    choices, line = logic.search_repos(ctx, "mythomax", "downloads")
    assert line == f"{len(choices)} repositories found."
    labels = dict((value, label) for label, value in choices)
    assert labels[MYTHO].startswith(f"{MYTHO} · 50.0k downloads · 300 likes")
    with pytest.raises(CatalogError, match="Type a keyword"):
        logic.search_repos(ctx, "  ", "downloads")


def test_file_choices_and_fit(ctx: AppContext) -> None:
    options = logic.file_choices(ctx, MYTHO)
    assert [c.quant for c in options] == ["Q2_K", "Q4_K_M", "Q8_0"]
    label = logic.choice_label(ctx, MYTHO, options[1])
    assert label.startswith("Q4_K_M · ") and label.endswith(MYTHO_Q4)
    assert logic.choice_fit(ctx, MYTHO, options[1]).verdict.value == "fits"


def test_download_job_reports_progress_and_cancels_per_owner(ctx: AppContext, hub_server: FakeHub) -> None:  # noqa: F811
    hub_server.seconds_per_block = 0.02
    jobs = logic.JobBoard()
    seen: list[str] = []
    job = jobs.start("alice", lambda j: logic.download(ctx, j, MYTHO, MYTHO_Q4))
    with pytest.raises(CatalogError, match="already running"):
        jobs.start("alice", lambda j: logic.download(ctx, j, MYTHO, MYTHO_Q4))
    while not job.wait(0.02):
        seen.append(job.words)
    assert job.error is None and job.result is not None and job.result.is_file()
    assert any(" of " in words and "/s" in words for words in seen)
    assert job.fraction == 1.0
    slow = jobs.start("bob", lambda j: logic.download(ctx, j, MYTHO, "mythomax-l2-13b.Q8_0.gguf"))
    time.sleep(0.1)
    assert not jobs.cancel("alice")  # alice's job is over; bob's is not hers to stop
    assert jobs.cancel("bob")
    slow.wait(10)
    assert type(slow.error).__name__ == "DownloadCancelledError"


def test_downloaded_model_loads_with_the_catalog_format(ctx: AppContext) -> None:
    path = Downloader(ctx.hub, ctx.store.models_dir).download(MYTHO, MYTHO_Q4)
    entry = ctx.catalog.match(MYTHO)
    assert entry is not None and entry.id == "mythomax-l2-13b"
    assert logic.installed_for(ctx, entry) is not None
    info = ctx.load_model(path, LoadOptions(n_ctx=512, threads=2))
    detected = ctx.detected_format()
    assert (detected.format_id, detected.catalog_id, detected.default_tab) == ("alpaca", entry.id, "chat")
    assert "Alpaca" in logic.summary_markdown(ctx, info)
    rows = logic.library_rows(ctx.library.items())
    assert any(row[0] == "MythoMax L2 13B" and row[1] == "downloaded" for row in rows)
    # The facts table, and the Chat tab's format list, name what was detected.
    facts = logic.facts_markdown(ctx, info)
    for fact in ("Architecture", "Quantization", "File size", "Trained context", "Loaded context", "512"):
        assert fact in facts
    assert (
        chat_logic.format_choices(ctx)[0][0]
        == "Auto: Alpaca (the catalog's recommendation for MythoMax L2 13B)"
    )


def test_the_bundled_model_shows_as_installed(ctx: AppContext) -> None:
    gemma = ctx.catalog.get("gemma-3-270m")
    item = logic.installed_for(ctx, gemma)
    assert item is not None and item.source == "bundled"
    assert "installed" in logic.catalog_card(ctx, gemma, None, installed=True)


def test_installed_models_show_their_plan_with_their_settings(
    ctx: AppContext, tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = ctx.library.add(tiny_gguf)
    monkeypatch.setattr(plans, "machine", lambda: Machine(ram_free=16 * 10**9, ram_total=32 * 10**9))
    auto = logic.library_rows([item])[0][logic.LIBRARY_COLUMNS.index("Plan")]
    assert re.fullmatch(r"CPU only, 2,048 context, about \d+ MB of 16\.0 GB free RAM", auto), auto
    short = LoadOptions(n_ctx=512, n_gpu_layers=None)
    row = logic.library_rows([item], None, lambda _item: short)[0]
    assert row[logic.LIBRARY_COLUMNS.index("Plan")].startswith("CPU only, 512 context, about ")


def test_load_options_respect_the_model_context(ctx: AppContext) -> None:
    spring = ctx.catalog.get("spring-dragon-13b")
    assert logic.entry_load_options(ctx, spring).n_ctx == min(512, spring.context_length or 512)
    wide = Settings(n_ctx=8192, load_model=False, data_dir=ctx.settings.data_dir)
    ctx.settings = wide
    assert logic.entry_load_options(ctx, spring).n_ctx == spring.context_length


def test_a_model_too_big_for_the_free_memory_says_so_on_its_button(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("catalog.fit.available_memory", lambda: 16 * 10**9)
    big, small = ctx.catalog.get("airoboros-l2-70b"), ctx.catalog.get("spring-dragon-13b")
    label, advised = logic.catalog_action(ctx, big, None, installed=False)
    assert re.fullmatch(r"Download anyway \(needs ~4\d\.\d GB, you have 16\.0 GB free\)", label), label
    assert not advised
    assert logic.catalog_action(ctx, big, None, installed=True)[0].startswith("Load anyway (needs ~")
    assert logic.catalog_action(ctx, small, None, installed=False) == ("Download and load", True)
    assert logic.catalog_action(ctx, ctx.catalog.get("rwkv-4-raven-7b"), None, False) == ("Cannot run", False)
    # The page lists the library once for every card.
    assert logic.installed_catalog_ids(ctx) == {"gemma-3-270m"}


def test_the_model_list_names_the_source_once() -> None:
    from catalog.bundled import BUNDLED_NAME
    from catalog.library import LibraryItem

    items = [
        LibraryItem("bundled", BUNDLED_NAME, Path("g.gguf"), "bundled", 1),
        LibraryItem("0123456789abcdef", "tiny", Path("t.gguf"), "downloaded", 1),
    ]
    assert [label for label, _ in logic.library_choices(items)] == [
        "Gemma 3 270M (bundled)",
        "tiny (downloaded)",
    ]


def test_a_load_past_the_trained_context_is_capped_and_said(ctx: AppContext, tiny_gguf: Path) -> None:
    item = ctx.library.add(tiny_gguf)
    assert item.context_length == 2048
    asked = LoadOptions(n_ctx=4096, threads=2)
    options = logic.within_trained_context(asked, item.context_length)
    assert options == LoadOptions(n_ctx=2048, threads=2)
    assert logic.within_trained_context(LoadOptions(n_ctx=1024), 2048).n_ctx == 1024
    assert logic.within_trained_context(asked, 0) == asked  # unknown: as asked
    info = ctx.load_model(item.path, options)
    note = logic.context_note(ctx, info, asked.n_ctx)
    assert note == (
        "Its context is 2,048 tokens, the length it was trained on, not the 4,096 asked for: "
        "past its training a model loses the thread."
    )
    assert logic.context_note(ctx, info, 2048) == ""
    # A context past the training (a backend that took it as asked) is named too.
    ctx.load_model(item.path, LoadOptions(n_ctx=4096, threads=2))
    assert "more than the 2,048 it was trained on" in logic.context_note(ctx, info, 4096)


def test_markdown_from_files_is_escaped() -> None:
    assert logic.md("<img src=x onerror=1>|a\nb") == "&lt;img src=x onerror=1>\\|a b"
    assert logic.md("![](h) \\[x](y)\rz") == "!\\[\\](h) \\\\\\[x\\](y) z"


def test_job_failure_is_kept_for_the_handler() -> None:
    jobs = logic.JobBoard()

    def broken(job: logic.ModelJob) -> Path:
        raise CatalogError("no space")

    before = set(threading.enumerate())
    job = jobs.start("carol", broken)
    assert job.wait(5)
    assert str(job.error) == "no space"
    for thread in set(threading.enumerate()) - before:
        thread.join(5)  # the job's thread ends just after it reports: nothing lingers
        assert not thread.is_alive(), thread.name
