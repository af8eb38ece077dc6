"""The Models tab's Recommended section: the guide's models, grouped as the guide groups them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from catalog.entries import CatalogEntry
from services.context import AppContext
from services.models import logic
from ui.errors import shown_errors
from ui.models.download import cancel_fn, download_and_load, loaded_line, tab_after_load
from ui.shared import owner_of


@dataclass
class CatalogWidgets:
    entries: list[CatalogEntry]  # the entry of each card, quant and button, in the same order
    status: gr.Markdown
    cancel: gr.Button
    cards: list[gr.Markdown]
    quants: list[gr.Dropdown]
    buttons: list[gr.Button]

    @property
    def refresh_outputs(self) -> list[Any]:
        """What `refresh_values` fills: every card, then every button."""
        return [*self.cards, *self.buttons]


def layout(ctx: AppContext) -> CatalogWidgets:
    entries = [e for _, _, group in ctx.catalog.grouped() for e in group]
    cards: list[gr.Markdown] = []
    buttons: list[gr.Button] = []
    quants: list[gr.Dropdown] = []
    with gr.Row():
        status = gr.Markdown(elem_id="catalog-status")
        cancel = gr.Button("Cancel download", size="sm", scale=0, min_width=160, elem_id="catalog-cancel")
    for _group, title, group in ctx.catalog.grouped():
        with gr.Accordion(title, open=True):
            for pair in (group[i : i + 2] for i in range(0, len(group), 2)):
                with gr.Row(equal_height=True):
                    for entry in pair:
                        with gr.Column():
                            card, quant, button = _entry_widgets(entry)
                        cards.append(card)
                        quants.append(quant)
                        buttons.append(button)
                    if len(pair) == 1:
                        gr.Column()  # keeps a lone card at half width
    return CatalogWidgets(entries, status, cancel, cards, quants, buttons)


def refresh_values(ctx: AppContext, w: CatalogWidgets) -> list[Any]:
    """Values for `refresh_outputs`: the cards and buttons as the installed models are now."""
    installed = {entry.id: logic.installed_for(ctx, entry) is not None for entry in w.entries}
    values: list[Any] = [logic.catalog_card(ctx, e, None, installed[e.id]) for e in w.entries]
    return values + [gr.update(value=_button_label(e, installed[e.id])) for e in w.entries]


def wire(
    w: CatalogWidgets,
    ctx: AppContext,
    jobs: logic.JobBoard,
    facts: gr.Markdown,
    tabs: gr.Tabs,
    tab_ids: set[str],
) -> list[Any]:
    """Wire the cards; returns their load events, for chaining what follows a model load."""
    loaded = []
    for entry, card, quant, button in zip(w.entries, w.cards, w.quants, w.buttons, strict=True):
        quant.input(
            _card_fn(ctx, entry), [quant], [card], api_visibility="undocumented", concurrency_limit=None
        )
        if entry.runnable:
            loaded.append(
                button.click(
                    _get_fn(ctx, jobs, entry, tab_ids),
                    [quant],
                    [w.status, facts, tabs],
                    api_visibility="undocumented",
                    concurrency_id="model-jobs",
                    concurrency_limit=2,
                    show_progress="hidden",  # the status line carries its own progress bar
                )
            )
    w.cancel.click(
        cancel_fn(jobs),
        None,
        None,
        api_visibility="undocumented",
        concurrency_limit=None,
    )
    return loaded


def _entry_widgets(entry: CatalogEntry) -> tuple[gr.Markdown, gr.Dropdown, gr.Button]:
    with gr.Group(elem_id=f"catalog-{entry.id}"):
        card = gr.Markdown(elem_id=f"card-{entry.id}")
        with gr.Row():
            choices = [
                (q.quant + (f" · {q.size_gb:g} GB" if q.size_gb else ""), q.file) for q in entry.quants
            ]
            recommended = entry.recommended
            quant = gr.Dropdown(
                choices=choices,
                value=recommended.file if recommended else None,
                label="Quant",
                visible=entry.runnable and bool(choices) and not entry.bundled,
                scale=3,
                elem_id=f"quant-{entry.id}",
            )
            button = gr.Button(
                _button_label(entry, entry.bundled),
                variant="primary" if entry.runnable else "secondary",
                interactive=entry.runnable,
                scale=1,
                elem_id=f"get-{entry.id}",
            )
    return card, quant, button


def _button_label(entry: CatalogEntry, installed: bool) -> str:
    if not entry.runnable:
        return "Cannot run"
    return "Load" if installed or entry.bundled else "Download and load"


def _card_fn(ctx: AppContext, entry: CatalogEntry) -> Callable[[str | None], str]:
    def card(quant: str | None) -> str:
        return logic.catalog_card(ctx, entry, quant, logic.installed_for(ctx, entry) is not None)

    return card


def _get_fn(
    ctx: AppContext, jobs: logic.JobBoard, entry: CatalogEntry, tab_ids: set[str]
) -> Callable[..., Iterator[tuple[Any, ...]]]:
    @shown_errors
    def get(quant_file: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        skip = gr.skip()
        installed = logic.installed_for(ctx, entry)
        if installed is not None:
            yield f"Loading **{logic.md(installed.name)}**…", skip, skip
            opts = logic.entry_load_options(ctx, entry)
            info = ctx.load_model(installed.path, opts)
            yield loaded_line(ctx, info), logic.facts_markdown(ctx, info), tab_after_load(ctx, tab_ids)
            return
        if not entry.gguf_repo:
            raise gr.Error(f"{entry.name} has no GGUF download.")
        file_name = quant_file or (entry.recommended.file if entry.recommended else "")
        line = ""
        for line in download_and_load(ctx, jobs, owner_of(request), entry.gguf_repo, file_name):
            yield line, skip, skip
        if ctx.models.info is not None and line.startswith("Loaded"):
            yield line, logic.facts_markdown(ctx, ctx.models.info), tab_after_load(ctx, tab_ids)

    return get
