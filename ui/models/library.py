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
from presets.errors import HearthError, InputError
from services.context import AppContext
from services.models import convert as convert_logic
from services.models import logic
from services.models import plan as plans
from ui.errors import shown_errors
from ui.models import convert as models_convert
from ui.models import load_settings as models_load_settings
from ui.models.download import tab_after_load


@dataclass
class LibraryWidgets:
    table: gr.Dataframe
    choice: gr.Dropdown
    refresh: gr.Button
    settings: models_load_settings.LoadSettingsWidgets  # context, GPU layers, threads, advanced, plan
    load: gr.Button
    unload: gr.Button
    delete: gr.Button
    confirm_row: gr.Row
    confirm: gr.Button
    keep: gr.Button
    add_path: gr.Textbox
    add: gr.Button
    status: gr.Markdown
    convert: models_convert.ConvertWidgets  # the Convert panel, under the list


def layout(ctx: AppContext) -> LibraryWidgets:
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
    settings = models_load_settings.layout(ctx)
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
    convert = models_convert.layout(ctx)
    return LibraryWidgets(
        table, choice, refresh, settings, load, unload, delete, confirm_row, confirm, keep,
        add_path, add, status, convert,
    )  # fmt: skip


def listing(ctx: AppContext) -> tuple[Any, Any]:
    """Values for the table and the model list."""
    items = ctx.library.items()
    loaded = Path(ctx.models.info.path) if ctx.models.info else None
    rows = logic.library_rows(items, loaded, lambda item: models_load_settings.options_for(ctx, item.path))
    return rows, gr.update(choices=logic.library_choices(items))


def wire(
    w: LibraryWidgets, ctx: AppContext, facts: gr.Markdown, tabs: gr.Tabs, tab_ids: set[str]
) -> list[Any]:
    """Wire the list; returns the Load and Unload events, for chaining what follows a change
    of model. A legacy GGML file opens the Convert panel here; `convert.wire` converts it."""
    keep_panel = tuple(gr.skip() for _ in w.convert.open_outputs)

    def open_convert(item: LibraryItem, previous: convert_logic.PendingConversion | None) -> tuple[Any, ...]:
        examined = convert_logic.examine(ctx, item.path, "library", item.id)
        models_convert.discard_upload(previous)  # a dropped file the panel showed before this one
        return models_convert.open_values(ctx, examined)

    @shown_errors
    def on_load(
        item_id: str | None,
        n_ctx: Any,
        gpu_layers: Any,
        threads: Any,
        threads_batch: Any,
        flash_attn: Any,
        cache_k: Any,
        cache_v: Any,
        use_mmap: Any,
        use_mlock: Any,
        n_batch: Any,
        n_ubatch: Any,
        previous: convert_logic.PendingConversion | None,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[Any, ...]:
        if not item_id:
            raise InputError("Pick a model from the list first.")
        item = ctx.library.get(item_id)
        if item.needs_conversion:
            line = f"**{logic.md(item.name)}** is a legacy GGML file: convert it to GGUF below."
            return gr.skip(), line, gr.skip(), *open_convert(item, previous)
        asked = plans.form_options(
            n_ctx, gpu_layers, threads, threads_batch, flash_attn, cache_k, cache_v, use_mmap, use_mlock,
            n_batch, n_ubatch,
        )  # fmt: skip
        opts = logic.within_trained_context(asked, item.context_length)
        outcome = ctx.load_planned(item.path, opts, lambda f, m: progress(f, desc=m))
        plans.remember_options(ctx.store, item.path, asked)
        info = outcome.info
        # A story or adventure model opens its tab; a chat model leaves you here.
        suited = tab_after_load(ctx, tab_ids) if ctx.detected_format().default_tab != "chat" else gr.skip()
        facts_now = logic.facts_markdown(ctx, info)
        planned = f" ({outcome.plan.words()})" if outcome.plan is not None else ""
        notes = " ".join((*outcome.notes, logic.context_note(ctx, info, asked.n_ctx)))
        line = f"Loaded **{logic.md(info.name)}**{planned}. {notes}".strip()
        return facts_now, line, suited, *keep_panel

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
            raise InputError("Pick a model from the list first.")
        item = ctx.library.get(item_id)
        info = ctx.models.info
        if info is not None and Path(info.path) in (item.path, *item.parts):
            raise InputError(f"{item.name} is loaded. Load another model before deleting it.")
        ctx.library.delete(item_id)
        rows, choices = listing(ctx)
        return gr.update(visible=False), rows, choices, f"Deleted **{logic.md(item.name)}**."

    @shown_errors
    def on_add(path: str, previous: convert_logic.PendingConversion | None) -> tuple[Any, ...]:
        if not path.strip():
            raise InputError("Type the path of a .gguf file first.")
        item = ctx.library.add(Path(path.strip()).expanduser())
        rows, _ = listing(ctx)
        choices = gr.update(choices=logic.library_choices(ctx.library.items()), value=item.id)
        if item.needs_conversion:
            line = f"Added **{logic.md(item.name)}**, a legacy GGML file: convert it to GGUF below."
            return rows, choices, "", line, *open_convert(item, previous)
        return rows, choices, "", f"Added **{logic.md(item.name)}**.", *keep_panel

    panel, waiting = w.convert.open_outputs, w.convert.pending
    quiet: dict[str, Any] = {"api_visibility": "undocumented"}
    loaded = w.load.click(
        on_load, [w.choice, *w.settings.inputs, waiting], [facts, w.status, tabs, *panel],
        api_name="load_model", concurrency_id="model-jobs", concurrency_limit=1,
    )  # fmt: skip
    unloaded = w.unload.click(
        on_unload, None, [facts, w.status], api_name="unload_model", concurrency_id="model-jobs"
    )
    w.choice.input(on_pick, [w.choice, waiting], panel, **quiet)
    models_load_settings.wire(w.settings, ctx, lambda item_id: _loadable(ctx, item_id), w.choice)
    w.refresh.click(lambda: listing(ctx), None, [w.table, w.choice], **quiet)
    w.delete.click(lambda: gr.update(visible=True), None, w.confirm_row, **quiet)
    w.keep.click(lambda: gr.update(visible=False), None, w.confirm_row, **quiet)
    w.confirm.click(
        on_delete, [w.choice], [w.confirm_row, w.table, w.choice, w.status], api_name="delete_model"
    )
    added = [w.table, w.choice, w.add_path, w.status, *panel]
    w.add.click(on_add, [w.add_path, waiting], added, api_name="add_model")
    return [loaded, unloaded]


def _loadable(ctx: AppContext, item_id: str | None) -> Path | None:
    """The file of the model picked in the list, when it can load (not a legacy GGML file)."""
    try:
        item = ctx.library.get(item_id) if item_id else None
    except HearthError:
        return None
    return item.path if item is not None and item.usable else None
