"""The Models tab: the loaded model, the guide's catalog, Hugging Face, and what is installed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from services.context import AppContext
from services.models import logic
from ui.errors import warn
from ui.models.tab import catalog as models_catalog
from ui.models.tab import hub as models_hub
from ui.models.tab import library as models_library
from ui.models.tab import remote as models_remote


@dataclass
class ModelsTab:
    facts: gr.Markdown
    loaded: list[Any]  # events that fire after a successful load, for other tabs to chain on
    page_outputs: list[Any]
    page_fn: Any  # fills `page_outputs` when the page opens


def build(ctx: AppContext, tabs: gr.Tabs, tab_ids: set[str]) -> ModelsTab:
    """The tab's layout and events. `tabs` is the app's top-level Tabs, so a one-click
    download can open the tab the new model suits."""
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
            catalog = models_catalog.build(ctx, jobs, facts, tabs, tab_ids)
        with gr.Tab("Search Hugging Face", id="models-hub"):
            hub = models_hub.build(ctx, jobs, facts, tabs, tab_ids)
        with gr.Tab("Installed", id="models-installed"):
            library = models_library.build(ctx, facts, conversions, tabs, tab_ids)
        with gr.Tab("Remote engine", id="models-remote"):
            remote = models_remote.build_remote_section(ctx)

    def page() -> tuple[Any, ...]:
        ctx.wait_ready()
        if ctx.startup_error:
            warn(ctx.startup_error)
        info = ctx.models.info
        return (
            logic.summary_markdown(ctx, info),
            logic.facts_markdown(ctx, info),
            *library.refresh_fn(),
            *catalog.refresh_fn(),
        )

    outputs = [summary, facts, library.table, library.choice, *catalog.cards, *catalog.buttons]
    remote_connected = models_remote.wire_remote(ctx, remote, facts)
    # Every event that changes the model; the other tabs refresh after each.
    loaded = [
        *catalog.loaded,
        hub.loaded,
        library.loaded,
        library.unloaded,
        library.converted,
        remote_connected,
    ]
    for event in loaded:
        event.success(page, None, outputs, api_visibility="undocumented")
    return ModelsTab(facts=facts, loaded=loaded, page_outputs=outputs, page_fn=page)
