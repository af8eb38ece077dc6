"""The Story tab: a notebook the writer and the model write together.

The writer edits the text freely; Generate continues it from the end, streaming into the
same box; Retry rolls the last continuation again and keeps the old ones as versions;
Undo and Redo step through what was added. Memory, the author's note and world info
steer the model without showing in the text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from engine.prompts import answer_of, split_thinking
from services.context import AppContext
from services.live import finished, marker
from services.story import logic
from services.story.logic import Action, StoryView
from services.story.steering import values as steering_values
from store.stories import Mode, StoredStory
from ui import prompt_inspector, sampler_panel
from ui.errors import shown_errors
from ui.sampler_panel import SamplerWidgets, params_from
from ui.shared import LLM_QUEUE, TabHandle, owner_of
from ui.story import panels as story_panels
from ui.story import steering as story_steering
from ui.story import story_list

MODE: Mode = "story"
THINKING = "The model is thinking before it writes…"


@dataclass
class StoryWidgets:
    state: gr.State
    side: story_list.ListWidgets
    text: gr.Textbox
    live: gr.HTML  # the marker the page follows a reply by (services.live); never shown
    generate: gr.Button
    retry: gr.Button
    undo: gr.Button
    redo: gr.Button
    stop: gr.Button
    versions: gr.Dropdown
    tokens: gr.Markdown
    steering: story_steering.SteeringWidgets
    sampler: SamplerWidgets
    inspector: prompt_inspector.InspectorWidgets

    @property
    def outputs(self) -> list[Any]:
        """What `show` fills, in order."""
        return [
            self.state, self.side.choice, self.side.title, self.text, self.live, self.versions, self.tokens,
            *self.steering.inputs,
        ]  # fmt: skip


def build(ctx: AppContext) -> TabHandle:
    w = layout(ctx)
    show = _shower(ctx, w)
    story_list.wire(w.side, ctx, MODE, w.state, w.outputs, show)
    _wire_actions(w, ctx, show)
    _wire_edits(w, ctx)
    return story_panels.wire(w, ctx, MODE, "Story", show)


def layout(ctx: AppContext) -> StoryWidgets:
    state = gr.State(None)
    menu = story_list.menu("story", "stories")
    with gr.Row():
        with gr.Column(scale=1, min_width=220, elem_id="story-sidebar"):
            side = story_list.layout(menu, "story", "story", "stories")
        with gr.Column(scale=4):
            text = gr.Textbox(
                label="Story",
                placeholder="Paste or type an opening, then press Generate. Edit anything, any time.",
                lines=16,
                max_lines=32,
                autoscroll=True,
                elem_id="story-text",
            )
            live = gr.HTML("", elem_id="story-live", container=False, padding=False)
            with gr.Row(elem_id="story-buttons"):
                generate = gr.Button("Generate", variant="primary", elem_id="story-generate")
                retry = gr.Button("Retry", elem_id="story-retry")
                undo = gr.Button("Undo", elem_id="story-undo")
                redo = gr.Button("Redo", elem_id="story-redo")
                stop = gr.Button("Stop", variant="stop", elem_id="story-stop")
            versions = gr.Dropdown(
                label="Versions of the last continuation", visible=False, elem_id="story-versions"
            )
            tokens = gr.Markdown("", elem_id="story-tokens")
            inspector = prompt_inspector.layout("story")
            steering = story_steering.layout("story", "World info")
            sampler = sampler_panel.layout(ctx.presets())
    return StoryWidgets(
        state, side, text, live, generate, retry, undo, redo, stop, versions, tokens, steering, sampler,
        inspector,
    )  # fmt: skip


def _shower(ctx: AppContext, w: StoryWidgets) -> story_list.Show:
    def show(view: StoryView, stored: StoredStory) -> tuple[Any, ...]:
        story = stored.story
        choices, selected = logic.version_choices(story)
        line, anchor = logic.tokens_or_reason(ctx, stored.story, view.anchor)
        return (
            replace(view, anchor=anchor),
            story_list.list_update(ctx, MODE, stored.id),
            story.title,
            gr.update(value=story.full_text(), interactive=True),
            "",  # no reply to follow: a story shown is a story at rest
            gr.update(choices=choices, value=selected, visible=bool(choices)),
            line,
            *steering_values(story),
        )

    return show


def _wire_actions(w: StoryWidgets, ctx: AppContext, show: story_list.Show) -> None:
    quiet: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "undocumented"}
    streaming: dict[str, Any] = {
        "concurrency_id": LLM_QUEUE, "concurrency_limit": 1, "show_progress": "hidden",
        "api_visibility": "undocumented",
    }  # fmt: skip
    inputs = [w.state, w.text, *w.sampler.controls]
    runs: list[Any] = []
    actions: tuple[tuple[gr.Button, Action], ...] = ((w.generate, "generate"), (w.retry, "retry"))
    for button, action in actions:
        event = button.click(_streamer(ctx, action), inputs, [w.text, w.live], **streaming)
        runs.append(event)
        event.then(story_list.done_fn(ctx, MODE, show), [w.state], w.outputs, **quiet)

    def step(change: Callable[[Any], Any]) -> Callable[..., tuple[Any, ...]]:
        @shown_errors
        def apply(request: gr.Request, view: StoryView | None, text: str) -> tuple[Any, ...]:
            logic.ensure_idle(ctx, owner_of(request), "undo or redo")
            view, _ = logic.current(ctx, view, MODE)
            logic.update(ctx, view, MODE, lambda s: s.edit_text(text or ""))
            return show(view, logic.update(ctx, view, MODE, change))

        return apply

    w.undo.click(step(lambda s: s.undo()), [w.state, w.text], w.outputs, **quiet)
    w.redo.click(step(lambda s: s.redo()), [w.state, w.text], w.outputs, **quiet)

    @shown_errors
    def on_version(request: gr.Request, view: StoryView | None, version: int | None) -> tuple[Any, ...]:
        logic.ensure_idle(ctx, owner_of(request), "pick a version")
        view, stored = logic.current(ctx, view, MODE)
        if version is None or not stored.story.chunks:
            return show(view, stored)
        last = len(stored.story.chunks) - 1
        return show(view, logic.update(ctx, view, MODE, lambda s: s.select_version(last, int(version))))

    w.versions.input(on_version, [w.state, w.versions], w.outputs, **quiet)

    w.stop.click(
        story_list.stop_fn(ctx, MODE, show),
        [w.state],
        w.outputs,
        cancels=runs,
        concurrency_limit=None,
        **quiet,
    )


def _streamer(ctx: AppContext, action: Action) -> Callable[..., AsyncIterator[tuple[Any, str]]]:
    @shown_errors
    async def stream(
        request: gr.Request, view: StoryView | None, text: str, *sliders: Any
    ) -> AsyncIterator[tuple[Any, str]]:
        params = params_from(list(sliders))
        view, _ = logic.current(ctx, view, MODE)
        stored = logic.update(ctx, view, MODE, lambda s: s.edit_text(text or ""))
        story = stored.story
        base = "".join(c.text for c in story.retry_context()) if action == "retry" else story.full_text()
        _view, run = await asyncio.to_thread(logic.start, ctx, view, MODE, params, owner_of(request), action)
        # The page follows the reply into the box over its own channel (services.live);
        # Gradio carries only the marker and, at the end, the finished text.
        token = ctx.live.follow(run, lambda partial: base + answer_of(partial), plain=True)
        # A thinking model adds nothing to the story until it answers: a line says so.
        note = ctx.live.follow(run, lambda partial: THINKING if not split_thinking(partial).closed else "")
        # The box is read-only while the model writes into it: the finished text replaces
        # what it shows, and would take with it anything typed meanwhile.
        live = marker(token, into="story-text") + marker(note, classes="hearth-status")
        yield gr.update(interactive=False), live
        await finished(run)
        yield gr.update(value=base + answer_of(run.text), interactive=True), ""
        story_list.report_failures(run)

    return stream


def _wire_edits(w: StoryWidgets, ctx: AppContext) -> None:
    """Save the writer's edits as they type and as they leave a field, so nothing typed is lost."""
    quiet: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "undocumented", "queue": False}

    @shown_errors
    def on_text(request: gr.Request, view: StoryView | None, text: str) -> None:
        if ctx.models.active_run(owner_of(request)) is not None:
            return  # the box shows the reply streaming in; the run saves it when it ends
        view, _ = logic.current(ctx, view, MODE)
        logic.update(ctx, view, MODE, lambda s: s.edit_text(text or ""))

    # Saved as the writer types (the newest keystrokes win when saves queue up), so
    # closing the page right after typing loses nothing; and again on leaving the box.
    w.text.input(on_text, [w.state, w.text], None, trigger_mode="always_last", **quiet)
    w.text.blur(on_text, [w.state, w.text], None, **quiet)
