"""The Models tab's Recommended section: the guide's models, grouped as the guide groups them.

Each card carries its own download: the progress, a Cancel button and how it ended
(loaded, cancelled, or why it failed) show under the card that was clicked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from catalog.entries import CatalogEntry
from catalog.errors import CatalogError
from services.context import AppContext
from services.models import logic
from ui.errors import shown_errors
from ui.models.download import cancel_fn, download_and_load, loaded_line, reported, tab_after_load
from ui.shared import owner_of


@dataclass
class EntryWidgets:
    """One catalog card: its facts, the quant, the button, and its download's line and Cancel."""

    card: gr.Markdown
    quant: gr.Dropdown
    button: gr.Button
    status: gr.Markdown
    cancel: gr.Button


@dataclass
class CatalogWidgets:
    entries: list[CatalogEntry]  # the entry of each card, quant and button, in the same order
    cards: list[gr.Markdown]
    quants: list[gr.Dropdown]
    buttons: list[gr.Button]
    statuses: list[gr.Markdown]
    cancels: list[gr.Button]

    @property
    def refresh_outputs(self) -> list[Any]:
        """What `refresh_values` fills: every card, then every button."""
        return [*self.cards, *self.buttons]


def layout(ctx: AppContext) -> CatalogWidgets:
    entries = [e for _, _, group in ctx.catalog.grouped() for e in group]
    made: list[EntryWidgets] = []
    for _group, title, group in ctx.catalog.grouped():
        with gr.Accordion(title, open=True):
            for pair in (group[i : i + 2] for i in range(0, len(group), 2)):
                with gr.Row(equal_height=True):
                    for entry in pair:
                        with gr.Column():
                            made.append(_entry_widgets(entry))
                    if len(pair) == 1:
                        gr.Column()  # keeps a lone card at half width
    return CatalogWidgets(
        entries,
        [m.card for m in made],
        [m.quant for m in made],
        [m.button for m in made],
        [m.status for m in made],
        [m.cancel for m in made],
    )


def refresh_values(ctx: AppContext, w: CatalogWidgets) -> list[Any]:
    """Values for `refresh_outputs`: the cards and buttons as the installed models are now."""
    local = logic.installed_catalog_ids(ctx)
    installed = {entry.id: entry.id in local for entry in w.entries}
    values: list[Any] = [logic.catalog_card(ctx, e, None, installed[e.id]) for e in w.entries]
    return values + [_button(ctx, e, None, installed[e.id]) for e in w.entries]


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
    cards = zip(w.entries, w.cards, w.quants, w.buttons, w.statuses, w.cancels, strict=True)
    for entry, card, quant, button, status, cancel in cards:
        quant.input(
            _card_fn(ctx, entry),
            [quant],
            [card, button],
            api_visibility="undocumented",
            concurrency_limit=None,
        )
        if entry.runnable:
            loaded.append(
                button.click(
                    _get_fn(ctx, jobs, entry, tab_ids),
                    [quant],
                    [status, cancel, facts, tabs],
                    api_visibility="undocumented",
                    concurrency_id="model-jobs",
                    concurrency_limit=2,
                    show_progress="hidden",  # the card's line carries its own progress bar
                )
            )
            cancel.click(cancel_fn(jobs), None, None, api_visibility="undocumented", concurrency_limit=None)
    return loaded


def _entry_widgets(entry: CatalogEntry) -> EntryWidgets:
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
        with gr.Row():
            status = gr.Markdown(visible=False, elem_id=f"status-{entry.id}")  # shown once it has news
            cancel = gr.Button(
                "Cancel download",
                size="sm",
                scale=0,
                min_width=160,
                visible=False,
                elem_id=f"cancel-{entry.id}",
            )
    return EntryWidgets(card, quant, button, status, cancel)


def _button_label(entry: CatalogEntry, installed: bool) -> str:
    """The button's words before the page knows the free memory (see `_button`)."""
    if not entry.runnable:
        return "Cannot run"
    return "Load" if installed or entry.bundled else "Download and load"


def _button(ctx: AppContext, entry: CatalogEntry, quant: str | None, installed: bool) -> Any:
    """The button as the free memory is now: a model too big for it says so, and is not the primary action."""
    label, advised = logic.catalog_action(ctx, entry, quant, installed)
    return gr.update(value=label, variant="primary" if advised else "secondary")


def _card_fn(ctx: AppContext, entry: CatalogEntry) -> Callable[[str | None], tuple[str, Any]]:
    def card(quant: str | None) -> tuple[str, Any]:
        installed = logic.installed_for(ctx, entry) is not None
        return logic.catalog_card(ctx, entry, quant, installed), _button(ctx, entry, quant, installed)

    return card


def _get_fn(
    ctx: AppContext, jobs: logic.JobBoard, entry: CatalogEntry, tab_ids: set[str]
) -> Callable[..., Iterator[tuple[Any, ...]]]:
    @shown_errors
    def get(quant_file: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        skip, hidden, line = gr.skip(), gr.update(visible=False), ""
        installed = logic.installed_for(ctx, entry)
        if installed is not None:
            for line in reported(_load_installed(ctx, entry, installed.path, installed.name)):
                yield _shown(line), hidden, skip, skip
        else:
            if not entry.gguf_repo:
                raise CatalogError(f"{entry.name} has no GGUF download.")
            file_name = quant_file or (entry.recommended.file if entry.recommended else "")
            lines = download_and_load(ctx, jobs, owner_of(request), entry.gguf_repo, file_name)
            shown = False  # Cancel shows while the bytes arrive, and goes when they stop however they stop
            for line in reported(lines):
                downloading = line.startswith("Downloading")
                # Only a change is sent: a button updated four times a second is hard to click.
                cancel = gr.update(visible=downloading) if downloading != shown else skip
                shown = downloading
                yield _shown(line), cancel, skip, skip
        if ctx.models.info is not None and line.startswith("Loaded"):
            yield (
                _shown(line),
                hidden,
                logic.facts_markdown(ctx, ctx.models.info),
                tab_after_load(ctx, tab_ids),
            )

    return get


def _shown(line: str) -> Any:
    return gr.update(value=line, visible=True)


def _load_installed(ctx: AppContext, entry: CatalogEntry, path: Path, name: str) -> Iterator[str]:
    yield f"Loading **{logic.md(name)}**…"
    info = ctx.load_model(path, logic.entry_load_options(ctx, entry))
    yield loaded_line(ctx, info)
