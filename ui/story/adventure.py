"""The Adventure tab: AI-Dungeon-style play.

The player picks a scenario (or writes one), answers its ${questions}, then acts: Do
("open the door" → "> You open the door."), Say ("hello" → '> You say "Hello."') or
Story (narration as typed). The transcript shows the newest parts with actions set
apart; the reply streams below it on its own, so streaming costs the same however long
the adventure is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from engine.prompts import InputKind, ScenarioError, split_thinking
from presets.errors import InputError
from services.context import AppContext
from services.live import finished, marker
from services.render import inert_html
from services.story import adventure as play
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

MODE: Mode = "adventure"
KINDS = [("Do", InputKind.DO.value), ("Say", InputKind.SAY.value), ("Story", InputKind.STORY.value)]


@dataclass
class AdventureWidgets:
    state: gr.State
    side: story_list.ListWidgets
    scenario_panel: gr.Accordion
    scenario: gr.Dropdown
    custom_prompt: gr.Textbox
    custom_memory: gr.Textbox
    questions: gr.Column
    transcript: gr.Markdown
    live: gr.Markdown
    kind: gr.Radio
    action: gr.Textbox
    send: gr.Button
    cont: gr.Button
    retry: gr.Button
    undo: gr.Button
    redo: gr.Button
    stop: gr.Button
    last_turn: gr.Textbox
    save_turn: gr.Button
    tokens: gr.Markdown
    steering: story_steering.SteeringWidgets
    sampler: SamplerWidgets
    inspector: prompt_inspector.InspectorWidgets

    @property
    def outputs(self) -> list[Any]:
        """What `show` fills, in order."""
        return [
            self.state, self.side.choice, self.side.title, self.transcript, self.live, self.last_turn,
            self.tokens, self.scenario_panel, *self.steering.inputs,
        ]  # fmt: skip


def build(ctx: AppContext) -> TabHandle:
    w = layout(ctx)
    show = _shower(ctx)
    story_list.wire(w.side, ctx, MODE, w.state, w.outputs, show)
    _wire_scenarios(w, ctx, show)
    _wire_play(w, ctx, show)
    return story_panels.wire(w, ctx, MODE, "Adventure", show)


def layout(ctx: AppContext) -> AdventureWidgets:
    state = gr.State(None)
    menu = story_list.menu("adventure", "adventures")
    with gr.Row():
        with gr.Column(scale=1, min_width=220, elem_id="adventure-sidebar"):
            side = story_list.layout(menu, "adventure", "adventure", "adventures")
        with gr.Column(scale=4):
            with gr.Accordion("Start from a scenario", open=True, elem_id="scenario-panel") as scenario_panel:
                choices = [(s.title, s.id) for s in play.scenarios()] + [("Write your own…", play.CUSTOM)]
                scenario = gr.Dropdown(choices, value=choices[0][1], label="Scenario", elem_id="scenario")
                custom_prompt = gr.Textbox(
                    label="Opening (use ${a question} for what to ask the player)",
                    lines=4,
                    visible=False,
                    elem_id="scenario-prompt",
                )
                custom_memory = gr.Textbox(label="Memory", lines=2, visible=False, elem_id="scenario-memory")
                questions = gr.Column()  # filled per scenario by `_render_questions`
            transcript = gr.Markdown(line_breaks=True, elem_id="adventure-transcript", container=True)
            live = gr.Markdown(visible=False, line_breaks=True, elem_id="adventure-live")
            with gr.Row():
                kind = gr.Radio(
                    KINDS,
                    value=InputKind.DO.value,
                    show_label=False,
                    scale=2,
                    min_width=230,
                    elem_id="adventure-kind",
                )
                action = gr.Textbox(
                    show_label=False,
                    placeholder="What do you do? (Enter to send; empty continues the story)",
                    scale=4,
                    elem_id="adventure-input",
                )
                send = gr.Button("Send", variant="primary", scale=1, elem_id="adventure-send")
            with gr.Row(elem_id="adventure-buttons"):
                cont = gr.Button("Continue", elem_id="adventure-continue")
                retry = gr.Button("Retry", elem_id="adventure-retry")
                undo = gr.Button("Undo", elem_id="adventure-undo")
                redo = gr.Button("Redo", elem_id="adventure-redo")
                stop = gr.Button("Stop", variant="stop", elem_id="adventure-stop")
            tokens = gr.Markdown("", elem_id="adventure-tokens")
            inspector = prompt_inspector.layout("adventure")
            with gr.Accordion("Edit the last turn", open=False):
                last_turn = gr.Textbox(show_label=False, lines=4, elem_id="adventure-last-turn")
                save_turn = gr.Button("Save the edit", size="sm", elem_id="adventure-save-turn")
            steering = story_steering.layout("adventure", "Story cards")
            sampler = sampler_panel.layout(ctx.presets())
    return AdventureWidgets(
        state, side, scenario_panel, scenario, custom_prompt, custom_memory, questions, transcript, live,
        kind, action, send, cont, retry, undo, redo, stop, last_turn, save_turn, tokens, steering, sampler,
        inspector,
    )  # fmt: skip


def _shower(ctx: AppContext) -> story_list.Show:
    def show(view: StoryView, stored: StoredStory) -> tuple[Any, ...]:
        story = stored.story
        line, anchor = logic.tokens_or_reason(ctx, story, view.anchor)
        return (
            replace(view, anchor=anchor),
            story_list.list_update(ctx, MODE, stored.id),
            story.title,
            play.transcript(story),
            gr.update(visible=False, value=""),
            play.last_turn(story),
            line,
            gr.update(open=not story.chunks),  # a started adventure needs no scenario
            *steering_values(story),
        )

    return show


def _wire_scenarios(w: AdventureWidgets, ctx: AppContext, show: story_list.Show) -> None:
    quiet: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "undocumented"}
    custom = [w.custom_prompt, w.custom_memory]
    w.scenario.change(lambda sid: [gr.update(visible=sid == play.CUSTOM)] * 2, [w.scenario], custom, **quiet)

    with w.questions:
        _render_questions(w, ctx, show)


def _render_questions(w: AdventureWidgets, ctx: AppContext, show: story_list.Show) -> None:
    """The chosen scenario's description, one box per ${question}, and Start."""
    quiet: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "undocumented"}

    @gr.render(inputs=[w.scenario, w.custom_prompt, w.custom_memory])
    def questions(scenario_id: str, prompt: str, memory: str) -> None:
        try:
            scenario = play.scenario_by_id(scenario_id, prompt or "", memory or "")
        except ScenarioError as exc:  # a scenario still being written: say what is wrong
            gr.Markdown(inert_html(str(exc)), elem_id="scenario-problem")
            return
        if scenario.description:
            gr.Markdown(inert_html(scenario.description), elem_id="scenario-description")
        asked = scenario.questions()
        boxes = [gr.Textbox(label=q, elem_classes=["scenario-answer"]) for q in asked]
        begin = gr.Button("Start the adventure", variant="primary", elem_id="scenario-start")

        @shown_errors
        def on_begin(*answers: str) -> tuple[Any, ...]:
            chosen = play.scenario_by_id(scenario_id, prompt or "", memory or "")
            stored = play.begin(ctx, chosen, dict(zip(asked, answers, strict=True)))
            return show(StoryView(stored.id), stored)

        begin.click(on_begin, boxes, w.outputs, **quiet)


QUIET: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "undocumented"}


def _wire_play(w: AdventureWidgets, ctx: AppContext, show: story_list.Show) -> None:
    runs = _wire_turns(w, ctx, show)
    _wire_edits(w, ctx, show)
    stop = story_list.stop_fn(ctx, MODE, show)

    def on_stop(view: StoryView | None, request: gr.Request) -> tuple[Any, ...]:
        return (*stop(view, request), gr.update(interactive=True))

    w.stop.click(on_stop, [w.state], [*w.outputs, w.send], cancels=runs, concurrency_limit=None, **QUIET)


def _wire_turns(w: AdventureWidgets, ctx: AppContext, show: story_list.Show) -> list[Any]:
    """Send (or Enter), Continue and Retry; returns their model runs, for Stop to cancel."""
    streaming: dict[str, Any] = {
        "concurrency_id": LLM_QUEUE, "concurrency_limit": 1, "show_progress": "hidden",
        "api_visibility": "undocumented",
    }  # fmt: skip
    done = story_list.done_fn(ctx, MODE, show)

    @shown_errors
    def on_act(request: gr.Request, view: StoryView | None, kind: str, raw: str) -> tuple[Any, ...]:
        # Enter in the action box still submits while Send is disabled.
        logic.ensure_idle(ctx, owner_of(request), "act again")
        view, _ = logic.current(ctx, view, MODE)
        if kind not in tuple(InputKind):
            raise InputError("Choose Do, Say or Story for the action.")
        stored = play.act(ctx, view, InputKind(kind), raw)
        # Send waits for this turn to finish: a second action now would land mid-reply.
        return (*show(view, stored), "", gr.update(interactive=False))

    def finished(view: StoryView | None) -> tuple[Any, ...]:
        return (*done(view), gr.update(interactive=True))

    run_inputs = [w.state, *w.sampler.controls]
    runs: list[Any] = []
    for trigger in (w.send.click, w.action.submit):
        acted = trigger(on_act, [w.state, w.kind, w.action], [*w.outputs, w.action, w.send], **QUIET)
        runs.append(acted.success(_streamer(ctx, "generate"), run_inputs, [w.live], **streaming))
    runs.append(w.cont.click(_streamer(ctx, "generate"), run_inputs, [w.live], **streaming))
    runs.append(w.retry.click(_streamer(ctx, "retry"), run_inputs, [w.live], **streaming))
    for run in runs:
        run.then(finished, [w.state], [*w.outputs, w.send], **QUIET)
    return runs


def _wire_edits(w: AdventureWidgets, ctx: AppContext, show: story_list.Show) -> None:
    """Undo, Redo and editing the last turn; refused while the model is still writing."""

    def step(change: Callable[[Any], Any]) -> Callable[..., tuple[Any, ...]]:
        @shown_errors
        def apply(request: gr.Request, view: StoryView | None) -> tuple[Any, ...]:
            logic.ensure_idle(ctx, owner_of(request), "undo or redo")
            view, _ = logic.current(ctx, view, MODE)
            return show(view, logic.update(ctx, view, MODE, change))

        return apply

    w.undo.click(step(lambda s: s.undo()), [w.state], w.outputs, **QUIET)
    w.redo.click(step(lambda s: s.redo()), [w.state], w.outputs, **QUIET)

    @shown_errors
    def on_save_turn(request: gr.Request, view: StoryView | None, text: str) -> tuple[Any, ...]:
        logic.ensure_idle(ctx, owner_of(request), "edit the last turn")
        view, _ = logic.current(ctx, view, MODE)
        return show(view, play.edit_last_turn(ctx, view, text or ""))

    w.save_turn.click(on_save_turn, [w.state, w.last_turn], w.outputs, **QUIET)


def _streamer(ctx: AppContext, action: Action) -> Callable[..., AsyncIterator[Any]]:
    @shown_errors
    async def stream(request: gr.Request, view: StoryView | None, *sliders: Any) -> AsyncIterator[Any]:
        params = params_from(list(sliders))
        view, _ = logic.current(ctx, view, MODE)
        _view, run = await asyncio.to_thread(logic.start, ctx, view, MODE, params, owner_of(request), action)

        def shown(partial: str) -> str:
            thinking = not split_thinking(partial).closed  # a thinking model, not answering yet
            return inert_html(logic.reply_text(partial, MODE) or ("*Thinking…*" if thinking else "…"))

        # The page follows the reply over its own channel (services.live); Gradio
        # carries the marker, then the finished reply.
        yield gr.update(visible=True, value=marker(ctx.live.follow(run, shown), "…", tag="div"))
        await finished(run)
        yield shown(run.text)
        story_list.report_failures(run)

    return stream
