"""What Story and Adventure wire alike after their own events: steering, the sampler and
the prompt inspector, ending in the tab's handle."""

from __future__ import annotations

from typing import Any, Protocol

import gradio as gr

from services.context import AppContext
from services.story import inspector as story_inspector
from services.story.logic import StoryView
from store.stories import Mode
from ui import prompt_inspector, sampler_panel
from ui.sampler_panel import SamplerWidgets, params_from
from ui.shared import TabHandle
from ui.story import steering as story_steering
from ui.story import story_list


class StoryTabWidgets(Protocol):
    """The widgets both tabs have."""

    state: gr.State
    side: story_list.ListWidgets
    tokens: gr.Markdown
    steering: story_steering.SteeringWidgets
    sampler: SamplerWidgets
    inspector: prompt_inspector.InspectorWidgets

    @property
    def outputs(self) -> list[Any]: ...


def wire(w: StoryTabWidgets, ctx: AppContext, mode: Mode, tab_name: str, show: story_list.Show) -> TabHandle:
    """Wire the shared panels of a Story or Adventure tab (its story list is wired first,
    by the tab); `show` fills `w.outputs`."""
    story_steering.wire(w.steering, ctx, mode, w.state, w.tokens)
    sampler_panel.wire(w.sampler, ctx)
    sampler_panel.wire_save(w.sampler, ctx, f"Saved from the {tab_name} tab")

    def inspect(view: StoryView | None, choice: str | None, *sliders: Any) -> Any:
        return story_inspector.inspect(ctx, view, mode, params_from(list(sliders)), choice)

    prompt_inspector.wire(w.inspector, w.state, inspect, w.sampler.controls)
    return TabHandle(story_list.load_fn(ctx, mode, show), w.state, w.outputs, remembers=[w.side.last])
