"""Memory, the author's note and world info (story cards): the panel both tabs share.

What the panel's values mean for a `Story` is `services.story.steering`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from services.context import AppContext
from services.story import logic
from services.story.logic import StoryView
from services.story.steering import apply
from store.stories import Mode
from ui.errors import shown_errors

WI_COLUMNS = [
    "Keys",
    "Secondary keys",
    "Anti keys",
    "Content",
    "Comment",
    "Constant",
    "Probability",
    "Enabled",
]
WI_TYPES: Any = ["str", "str", "str", "str", "str", "bool", "number", "bool"]
PLACEMENTS = [("After memory", "after_memory"), ("Before the author's note", "before_authors_note")]
UNITS = [("characters", "characters"), ("lines", "lines"), ("tokens", "tokens")]


@dataclass
class SteeringWidgets:
    memory: gr.Textbox
    note: gr.Textbox
    template: gr.Textbox
    depth: gr.Number
    unit: gr.Radio
    world_info: gr.Dataframe
    placement: gr.Radio
    search_depth: gr.Number

    @property
    def inputs(self) -> list[Any]:
        return [
            self.memory, self.note, self.template, self.depth, self.unit,
            self.world_info, self.placement, self.search_depth,
        ]  # fmt: skip


def layout(prefix: str, cards_label: str) -> SteeringWidgets:
    """The accordion; `prefix` keeps element ids apart between the two tabs."""
    with gr.Accordion("Memory, author's note and " + cards_label.lower(), open=False):
        memory = gr.Textbox(
            label="Memory (always at the top of the prompt, never shown in the story)",
            lines=3,
            elem_id=f"{prefix}-memory",
        )
        with gr.Row():
            note = gr.Textbox(label="Author's note", lines=2, scale=3, elem_id=f"{prefix}-note")
            template = gr.Textbox(
                label="Note template (<|> is the note)", scale=2, elem_id=f"{prefix}-template"
            )
        with gr.Row():
            depth = gr.Number(label="Note depth", precision=0, minimum=0, elem_id=f"{prefix}-depth")
            unit = gr.Radio(UNITS, label="counted in", elem_id=f"{prefix}-unit")
        world_info = gr.Dataframe(
            headers=WI_COLUMNS,
            datatype=WI_TYPES,
            label=f"{cards_label} (comma-separated keys; an entry joins when a key is in the story)",
            interactive=True,
            wrap=True,
            elem_id=f"{prefix}-world-info",
        )
        with gr.Row():
            placement = gr.Radio(
                PLACEMENTS, label=f"Place {cards_label.lower()}", elem_id=f"{prefix}-placement"
            )
            search_depth = gr.Number(
                label="Scan the last N characters for keys (0 = all)",
                precision=0,
                minimum=0,
                elem_id=f"{prefix}-search-depth",
            )
    return SteeringWidgets(memory, note, template, depth, unit, world_info, placement, search_depth)


def wire(w: SteeringWidgets, ctx: AppContext, mode: Mode, state: gr.State, tokens: gr.Markdown) -> None:
    """Save the panel as the writer leaves each field (nothing typed is lost), and
    refresh the token line."""
    quiet: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "undocumented", "queue": False}

    @shown_errors
    def on_change(view: StoryView | None, *widget_values: Any) -> str:
        view, _ = logic.current(ctx, view, mode)
        stored = logic.update(ctx, view, mode, lambda s: apply(s, list(widget_values)))
        return logic.tokens_or_reason(ctx, stored.story, view.anchor)[0]

    @shown_errors
    def on_typing(view: StoryView | None, *widget_values: Any) -> None:
        # Saved as the writer types, without recounting tokens (that waits for blur).
        view, _ = logic.current(ctx, view, mode)
        logic.update(ctx, view, mode, lambda s: apply(s, list(widget_values)))

    inputs = [state, *w.inputs]
    for box in (w.memory, w.note, w.template):
        box.input(on_typing, inputs, None, trigger_mode="always_last", **quiet)
    for field in (w.memory, w.note, w.template, w.depth, w.search_depth):
        field.blur(on_change, inputs, [tokens], **quiet)
    for choice in (w.unit, w.placement, w.world_info):
        choice.input(on_change, inputs, [tokens], **quiet)
