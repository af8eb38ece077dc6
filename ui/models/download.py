"""Downloading a model and loading it, with progress and Cancel: shared by the catalog
and the Hugging Face browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from catalog.errors import DownloadCancelledError
from catalog.naming import GgufChoice
from engine.types import ModelInfo
from presets.errors import HearthError
from services.context import AppContext
from services.models import logic
from ui.shared import owner_of

POLL = 0.25  # seconds between progress updates


def cancel_fn(jobs: logic.JobBoard) -> Any:
    """A Cancel handler for this browser's download. Gradio hands the request only to a
    parameter annotated `gr.Request`, hence a def and not a lambda."""

    def cancel(request: gr.Request) -> None:
        jobs.cancel(owner_of(request))

    return cancel


def download_and_load(
    ctx: AppContext,
    jobs: logic.JobBoard,
    owner: str,
    repo_id: str,
    choice: GgufChoice | str,
) -> Iterator[str]:
    """Yield status lines while a model downloads, then load it. The last line says how it went.

    After a successful load `ctx.models.info` is the new model; a cancelled download
    ends with a status line (its bytes stay on disk for a resume), any other failure raises.
    """
    name = choice.name if isinstance(choice, GgufChoice) else choice
    job = jobs.start(owner, lambda j: logic.download(ctx, j, repo_id, choice))
    yield f"Downloading **{logic.md(name)}**…"
    while not job.wait(POLL):
        yield f"Downloading **{logic.md(name)}**: {job.words}"
    if isinstance(job.error, DownloadCancelledError):
        yield "Download cancelled. What arrived is kept: downloading again resumes where it stopped."
        return
    if job.error is not None:
        raise job.error
    assert job.result is not None
    yield from load_downloaded(ctx, job.result, repo_id)


def reported(lines: Iterator[str]) -> Iterator[str]:
    """`lines`, and when they fail, one more that says how, before the error goes on to the
    handler: a status line never stays at "Downloading…" after the download has stopped."""
    try:
        yield from lines
    except Exception as exc:
        yield f"**Failed:** {logic.md(failure_words(exc))}"
        raise


def failure_words(exc: Exception) -> str:
    """What went wrong, in the words the error toast uses."""
    if isinstance(exc, gr.Error):
        return str(exc.message)
    if isinstance(exc, HearthError):
        return str(exc)
    return f"something went wrong inside Hearth ({type(exc).__name__}). The app is still running."


def load_downloaded(ctx: AppContext, path: Path, repo_id: str) -> Iterator[str]:
    entry = ctx.catalog.match(repo_id) or ctx.catalog.match(path.name)
    yield f"Downloaded. Loading **{logic.md(path.name)}**…"
    info = ctx.load_model(path, logic.entry_load_options(ctx, entry))
    yield loaded_line(ctx, info)


def loaded_line(ctx: AppContext, info: ModelInfo) -> str:
    detected = ctx.detected_format()
    line = (
        f"Loaded **{logic.md(info.name)}** with the {detected.format.name} format "
        f"({detected.reason}). It suits the {detected.default_tab.title()} tab."
    )
    return f"{line} {logic.context_note(ctx, info, ctx.settings.n_ctx)}".rstrip()


def tab_after_load(ctx: AppContext, available: set[str]) -> Any:
    """Select the tab the loaded model suits (Chat when that tab does not exist yet)."""
    wanted = ctx.detected_format().default_tab
    return gr.Tabs(selected=wanted if wanted in available else "chat")
