"""The Models tab's Installed section: every local model, loaded, unloaded, deleted or added by path.

A legacy GGML file (added by path, picked in the list, or dropped on the page) opens
the Convert panel (`ui/models/convert.py`) instead of failing to load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from catalog.library import LibraryItem
from engine.types import LoadOptions
from services.context import AppContext
from services.models import convert as convert_logic
from services.models import logic
from ui.errors import shown_errors
from ui.models.download import tab_after_load
from ui.models.tab import convert as models_convert


@dataclass
class LibrarySection:
    table: gr.Dataframe
    choice: gr.Dropdown
    status: gr.Markdown
    loaded: Any  # the Load event, for chaining what follows a load
    unloaded: Any  # the Unload event
    converted: Any  # the Convert event, which loads the converted model
    refresh_fn: Any  # () -> (table, choice) values


def build(
    ctx: AppContext, facts: gr.Markdown, convert_jobs: logic.JobBoard, tabs: gr.Tabs, tab_ids: set[str]
) -> LibrarySection:
    options = ctx.settings.load_options
    table = gr.Dataframe(
        headers=logic.LIBRARY_COLUMNS,
        interactive=False,
        wrap=True,
        elem_id="library-table",
        label="Installed",
    )
    with gr.Row():
        # Choices change at run time; the handlers validate what comes back.
        choice = gr.Dropdown(
            label="Model", choices=[], allow_custom_value=True, scale=4, elem_id="library-choice"
        )
        refresh = gr.Button("Refresh", scale=0, min_width=90, elem_id="library-refresh")
    with gr.Row():
        n_ctx = gr.Number(
            options.n_ctx, label="Context size (n_ctx)", precision=0, minimum=256, elem_id="load-n-ctx"
        )
        threads = gr.Number(
            options.threads, label="CPU threads", precision=0, minimum=1, elem_id="load-threads"
        )
        gpu = gr.Number(options.n_gpu_layers, label="GPU layers", precision=0, minimum=-1, elem_id="load-gpu")
    with gr.Row():
        load = gr.Button("Load model", variant="primary", elem_id="load-model")
        unload = gr.Button("Unload", elem_id="unload-model")
        delete = gr.Button("Delete", variant="stop", elem_id="library-delete")
    with gr.Row(visible=False) as confirm_row:
        confirm = gr.Button("Delete the file for good", variant="stop", size="sm", elem_id="library-confirm")
        keep = gr.Button("Keep it", size="sm", elem_id="library-keep")
    with gr.Row():
        add_path = gr.Textbox(label="Add a model file by its path", scale=4, elem_id="model-path")
        add = gr.Button("Add", scale=0, min_width=90, elem_id="library-add")
    status = gr.Markdown(elem_id="load-status")
    convert = models_convert.build(ctx, convert_jobs, facts, tabs, tab_ids)
    keep_panel = tuple(gr.skip() for _ in convert.open_outputs)

    def open_convert(item: LibraryItem, previous: convert_logic.PendingConversion | None) -> tuple[Any, ...]:
        examined = convert_logic.examine(ctx, item.path, "library", item.id)
        models_convert.discard_upload(previous)  # a dropped file the panel showed before this one
        return models_convert.open_values(ctx, examined)

    def listing() -> tuple[Any, Any]:
        items = ctx.library.items()
        loaded = Path(ctx.models.info.path) if ctx.models.info else None
        rows = logic.library_rows(items, loaded, ctx.settings.n_ctx)
        return rows, gr.update(choices=logic.library_choices(items))

    @shown_errors
    def on_load(
        item_id: str | None,
        size: float,
        cpus: float,
        layers: float,
        previous: convert_logic.PendingConversion | None,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, ...]:
        if not item_id:
            raise gr.Error("Pick a model from the list first.")
        item = ctx.library.get(item_id)
        if item.needs_conversion:
            line = f"**{logic.md(item.name)}** is a legacy GGML file: convert it to GGUF below."
            return gr.skip(), line, gr.skip(), *open_convert(item, previous)
        opts = LoadOptions(n_ctx=int(size), threads=int(cpus), n_gpu_layers=int(layers))
        info = ctx.load_model(item.path, opts, lambda f, m: progress(f, desc=m))
        # A story or adventure model opens its tab; a chat model leaves you here.
        suited = tab_after_load(ctx, tab_ids) if ctx.detected_format().default_tab != "chat" else gr.skip()
        facts_now = logic.facts_markdown(ctx, info)
        return facts_now, f"Loaded **{logic.md(info.name)}**.", suited, *keep_panel

    @shown_errors
    def on_unload() -> tuple[Any, ...]:
        info = ctx.models.info
        ctx.models.unload()  # runs already queued finish first
        line = f"Unloaded **{logic.md(info.name)}**." if info else "No model was loaded."
        return logic.facts_markdown(ctx, None), line

    @shown_errors
    def on_pick(item_id: str | None, previous: convert_logic.PendingConversion | None) -> tuple[Any, ...]:
        item = ctx.library.get(item_id) if item_id else None
        return open_convert(item, previous) if item is not None and item.needs_conversion else keep_panel

    @shown_errors
    def on_delete(item_id: str | None) -> tuple[Any, ...]:
        if not item_id:
            raise gr.Error("Pick a model from the list first.")
        item = ctx.library.get(item_id)
        info = ctx.models.info
        if info is not None and Path(info.path) in (item.path, *item.parts):
            raise gr.Error(f"{item.name} is loaded. Load another model before deleting it.")
        ctx.library.delete(item_id)
        rows, choices = listing()
        return gr.update(visible=False), rows, choices, f"Deleted **{logic.md(item.name)}**."

    @shown_errors
    def on_add(path: str, previous: convert_logic.PendingConversion | None) -> tuple[Any, ...]:
        if not path.strip():
            raise gr.Error("Type the path of a .gguf file first.")
        item = ctx.library.add(Path(path.strip()).expanduser())
        rows, _ = listing()
        choices = gr.update(choices=logic.library_choices(ctx.library.items()), value=item.id)
        if item.needs_conversion:
            line = f"Added **{logic.md(item.name)}**, a legacy GGML file: convert it to GGUF below."
            return rows, choices, "", line, *open_convert(item, previous)
        return rows, choices, "", f"Added **{logic.md(item.name)}**.", *keep_panel

    panel, waiting = convert.open_outputs, convert.pending
    loaded = load.click(
        on_load, [choice, n_ctx, threads, gpu, waiting], [facts, status, tabs, *panel], api_name="load_model",
        concurrency_id="model-jobs", concurrency_limit=1,
    )  # fmt: skip
    unloaded = unload.click(
        on_unload, None, [facts, status], api_name="unload_model", concurrency_id="model-jobs"
    )
    choice.input(on_pick, [choice, waiting], panel, api_visibility="undocumented")
    refresh.click(listing, None, [table, choice], api_visibility="undocumented")
    delete.click(lambda: gr.update(visible=True), None, confirm_row, api_visibility="undocumented")
    keep.click(lambda: gr.update(visible=False), None, confirm_row, api_visibility="undocumented")
    confirm.click(on_delete, [choice], [confirm_row, table, choice, status], api_name="delete_model")
    add.click(on_add, [add_path, waiting], [table, choice, add_path, status, *panel], api_name="add_model")
    return LibrarySection(table, choice, status, loaded, unloaded, convert.loaded, listing)
