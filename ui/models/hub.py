"""The Models tab's Hugging Face section: search any GGUF repo, pick a file, download it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from catalog.naming import GgufChoice
from presets.errors import InputError
from services.context import AppContext
from services.models import logic
from ui.errors import shown_errors
from ui.models.download import cancel_fn, download_and_load, reported, tab_after_load
from ui.shared import owner_of

SORTS = [("Most downloaded", "downloads"), ("Most liked", "likes"), ("Recently updated", "recent")]


@dataclass
class HubWidgets:
    query: gr.Textbox
    sort: gr.Radio
    search: gr.Button
    results: gr.Dropdown
    files: gr.Dropdown
    fit: gr.Markdown
    get: gr.Button
    cancel: gr.Button
    status: gr.Markdown


def layout() -> HubWidgets:
    with gr.Row():
        query = gr.Textbox(
            label="Search GGUF models",
            placeholder="a keyword, owner/repo, or a huggingface.co link",
            scale=4,
            elem_id="hub-query",
        )
        sort = gr.Radio(SORTS, value="downloads", label="Sort by", scale=2, elem_id="hub-sort")
        search = gr.Button("Search", variant="primary", scale=1, elem_id="hub-search")
    # Choices change at run time; the handlers validate what comes back.
    results = gr.Dropdown(label="Repositories", choices=[], allow_custom_value=True, elem_id="hub-results")
    files = gr.Dropdown(label="GGUF files", choices=[], allow_custom_value=True, elem_id="hub-files")
    fit = gr.Markdown(elem_id="hub-fit")
    with gr.Row():
        get = gr.Button("Download and load", variant="primary", elem_id="hub-download")
        cancel = gr.Button("Cancel download", variant="stop", elem_id="hub-cancel")
    status = gr.Markdown(elem_id="hub-status")
    return HubWidgets(query, sort, search, results, files, fit, get, cancel, status)


def wire(
    w: HubWidgets, ctx: AppContext, jobs: logic.JobBoard, facts: gr.Markdown, tabs: gr.Tabs, tab_ids: set[str]
) -> Any:
    """Wire the search and the download; returns the download's event, for chaining what
    follows a model load."""

    @shown_errors
    def on_search(text: str, order: str) -> tuple[Any, ...]:
        choices, line = logic.search_repos(ctx, text, order)
        first = choices[0][1] if choices else None
        return gr.update(choices=choices, value=first), gr.update(choices=[], value=None), "", line

    @shown_errors
    def on_repo(repo_id: str | None) -> tuple[Any, ...]:
        if not repo_id:
            return gr.update(choices=[], value=None), "", ""
        options = logic.file_choices(ctx, repo_id)
        if not options:
            return gr.update(choices=[], value=None), "", f"{logic.md(repo_id)} has no GGUF files."
        labels = [(logic.choice_label(ctx, repo_id, c), c.first_part) for c in options]
        best = _suggested(options)
        return gr.update(choices=labels, value=best.first_part), _fit_line(ctx, repo_id, best), ""

    @shown_errors
    def on_file(repo_id: str | None, first_part: str | None) -> str:
        choice = _find(ctx, repo_id, first_part)
        return _fit_line(ctx, repo_id or "", choice) if choice else ""

    @shown_errors
    def on_get(
        repo_id: str | None,
        first_part: str | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        choice = _find(ctx, repo_id, first_part)
        if choice is None or not repo_id:
            raise InputError("Search for a repository and pick a file first.")
        skip, line = gr.skip(), ""
        for line in reported(download_and_load(ctx, jobs, owner_of(request), repo_id, choice)):
            yield line, skip, skip
        if line.startswith("Loaded") and ctx.models.info is not None:
            yield line, logic.facts_markdown(ctx, ctx.models.info), tab_after_load(ctx, tab_ids)

    quiet: dict[str, Any] = {"api_visibility": "undocumented", "concurrency_limit": 4}
    found = [w.results, w.files, w.fit, w.status]
    w.search.click(on_search, [w.query, w.sort], found, api_name="hub_search")
    w.query.submit(on_search, [w.query, w.sort], found, **quiet)
    # .change, not .input: a search that picks the first result lists its files too.
    w.results.change(on_repo, [w.results], [w.files, w.fit, w.status], **quiet)
    w.files.input(on_file, [w.results, w.files], [w.fit], **quiet)
    loaded = w.get.click(
        on_get, [w.results, w.files], [w.status, facts, tabs], api_name="hub_download",
        concurrency_id="model-jobs", concurrency_limit=2, show_progress="hidden",
    )  # fmt: skip
    w.cancel.click(cancel_fn(jobs), None, None, **quiet)
    return loaded


def _find(ctx: AppContext, repo_id: str | None, first_part: str | None) -> GgufChoice | None:
    if not repo_id or not first_part:
        return None
    return next((c for c in logic.file_choices(ctx, repo_id) if c.first_part == first_part), None)


def _suggested(options: list[GgufChoice]) -> GgufChoice:
    """Q4_K_M when the repo has it (the usual sweet spot), else the middle size."""
    for choice in options:
        if (choice.quant or "").upper() == "Q4_K_M":
            return choice
    return options[len(options) // 2]


def _fit_line(ctx: AppContext, repo_id: str, choice: GgufChoice) -> str:
    return f"**{logic.md(choice.name)}** · Memory: {logic.choice_words(ctx, repo_id, choice)}"
