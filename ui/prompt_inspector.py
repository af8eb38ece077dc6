"""The "Inspect prompt" panel of the Chat, Story and Adventure tabs.

It shows the exact text sent to the model (inert: a read-only code box, never rendered
as Markdown) and a table of its parts with their token counts, which add up to the
prompt's total (services/prompt_report.py). Each tab gives it a function from its state
and the chosen prompt to an `Inspection`; the panel loads when it is opened, on
Refresh, and when another prompt is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from services.prompt_report import Inspection
from services.render import inert_html
from ui.errors import shown_errors

COLUMNS = ["Part", "Tokens", "Share"]
Inspect = Callable[..., Inspection]  # (the tab's state, the chosen prompt, the `extra` inputs' values)


@dataclass
class InspectorWidgets:
    panel: gr.Accordion
    choice: gr.Dropdown
    refresh: gr.Button
    summary: gr.Markdown
    table: gr.Dataframe
    text: gr.Code

    @property
    def outputs(self) -> list[Any]:
        return [self.choice, self.summary, self.table, self.text]


def layout(prefix: str) -> InspectorWidgets:
    """The panel, closed; element ids start with `prefix` ("chat", "story", "adventure")."""
    with gr.Accordion("Inspect prompt", open=False, elem_id=f"{prefix}-inspect") as panel:
        with gr.Row():
            # Choices change at run time; the handler checks what comes back.
            choice = gr.Dropdown(
                label="Prompt of",
                choices=[],
                allow_custom_value=True,
                scale=4,
                elem_id=f"{prefix}-inspect-choice",
            )
            refresh = gr.Button("Refresh", scale=0, min_width=90, elem_id=f"{prefix}-inspect-refresh")
        summary = gr.Markdown("", elem_id=f"{prefix}-inspect-summary")
        table = gr.Dataframe(
            headers=COLUMNS,
            datatype=["str", "str", "str"],
            interactive=False,
            wrap=True,
            elem_id=f"{prefix}-inspect-parts",
            label="Parts",
        )
        text = gr.Code(
            language=None,
            interactive=False,
            lines=6,
            max_lines=30,
            wrap_lines=True,
            show_line_numbers=False,  # wrapped lines would misalign them
            label="Exact text sent to the model",
            buttons=["copy"],
            elem_id=f"{prefix}-inspect-text",
        )
    return InspectorWidgets(panel, choice, refresh, summary, table, text)


def wire(w: InspectorWidgets, state: gr.State, inspect: Inspect, extra: list[Any] | None = None) -> None:
    """Load the panel from `state` (plus `extra` inputs, passed after the choice)."""

    @shown_errors
    def load(view: Any, choice: str | None, *more: Any) -> tuple[Any, ...]:
        return values(inspect(view, choice, *more))

    def latest(view: Any, *more: Any) -> tuple[Any, ...]:
        return load(view, None, *more)

    quiet: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "undocumented"}
    inputs = [state, *(extra or [])]
    w.panel.expand(latest, inputs, w.outputs, **quiet)
    w.refresh.click(latest, inputs, w.outputs, **quiet)
    w.choice.input(load, [state, w.choice, *(extra or [])], w.outputs, **quiet)


def values(found: Inspection) -> tuple[Any, ...]:
    """The panel's values for an inspection, in `InspectorWidgets.outputs` order."""
    return (
        gr.update(choices=found.choices, value=found.selected),
        inert_html(found.summary),
        found.rows,
        found.text,
    )
