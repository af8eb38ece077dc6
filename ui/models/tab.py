"""The Models tab: the loaded model, the guide's catalog, Hugging Face, and what is installed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from services.context import AppContext
from services.models import logic
from ui.errors import warn
from ui.models import catalog as models_catalog
from ui.models import convert as models_convert
from ui.models import hub as models_hub
from ui.models import library as models_library
from ui.models import remote as models_remote


@dataclass
class ModelsTab:
    facts: gr.Markdown
    loaded: list[Any]  # events that fire after a successful load, for other tabs to chain on
    page_outputs: list[Any]
    page_fn: Any  # fills `page_outputs` when the page opens


def build(ctx: AppContext, tabs: gr.Tabs, tab_ids: set[str]) -> ModelsTab:
    """Each section's layout, then its events. `tabs` is the app's top-level Tabs, so a
    one-click download can open the tab the new model suits."""
    jobs = logic.JobBoard()
    conversions = logic.JobBoard("conversion")
    summary = gr.Markdown(elem_id="model-summary")
    with gr.Accordion("Details of the loaded model", open=False):
        facts = gr.Markdown(elem_id="model-facts")
    with gr.Tabs(elem_id="models-sections"):
        with gr.Tab("Recommended", id="models-catalog"):
            gr.Markdown(
                "The models a popular newcomers' guide recommends, grouped the way it groups them. "
                "One click downloads the recommended quant, loads it, and opens the tab it suits."
            )
            catalog = models_catalog.layout(ctx)
        with gr.Tab("Search Hugging Face", id="models-hub"):
            hub = models_hub.layout()
        with gr.Tab("Installed", id="models-installed"):
            library = models_library.layout(ctx)
        with gr.Tab("Remote engine", id="models-remote"):
            remote = models_remote.layout(ctx)

    def page() -> tuple[Any, ...]:
        ctx.wait_ready()
        if ctx.startup_error:
            warn(ctx.startup_error)
        for words in ctx.take_warnings():  # each once: a CPU-only build asked for GPU layers
            warn(words)
        info = ctx.models.info
        return (
            logic.summary_markdown(ctx, info),
            logic.facts_markdown(ctx, info),
            *models_library.listing(ctx),
            *models_catalog.refresh_values(ctx, catalog),
        )

    outputs = [summary, facts, library.table, library.choice, *catalog.refresh_outputs]
    catalog_loads = models_catalog.wire(catalog, ctx, jobs, facts, tabs, tab_ids)
    hub_load = models_hub.wire(hub, ctx, jobs, facts, tabs, tab_ids)
    converted = models_convert.wire(library.convert, ctx, conversions, facts, tabs, tab_ids)
    library_loads = models_library.wire(library, ctx, facts, tabs, tab_ids)
    connected = models_remote.wire(remote, ctx, facts)
    # Every event that changes the model; the other tabs refresh after each.
    loaded = [*catalog_loads, hub_load, *library_loads, converted, connected]
    for event in loaded:
        event.success(page, None, outputs, api_visibility="undocumented")
    return ModelsTab(facts=facts, loaded=loaded, page_outputs=outputs, page_fn=page)
