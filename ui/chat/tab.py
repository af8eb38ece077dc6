"""The Chat tab: layout first, then events. The logic lives in `services.chat` (logic, reply,
actions, characters); the sidebar, the selected message and the panels have modules of their own.

Streaming cost does not grow with the chat: the history Chatbot holds a window of
recent messages and is updated once per turn, while a reply streams into a small
separate Chatbot as plain values, a few updates a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import gradio as gr

from engine.run import Run
from presets.errors import InputError
from presets.samplers import ordered_values
from services.chat import actions as chat_actions
from services.chat import bubbles, logic
from services.chat import inspector as chat_inspector
from services.chat import reply as chat_reply
from services.chat.logic import ChatView
from services.context import AppContext
from services.live import finished
from ui import prompt_inspector, sampler_panel
from ui.chat import attach as chat_attach
from ui.chat import panels as chat_panels
from ui.chat import prompt_panel
from ui.chat import selection as chat_selection
from ui.chat import side as chat_side
from ui.chat import top as chat_top
from ui.chat.widgets import EDITS, ChatWidgets, Switch, chatbot, read_settings
from ui.errors import shown_errors, warn
from ui.shared import LLM_QUEUE, TabHandle, owner_of

# Where the browser keeps the chat it was last in (localStorage). Gradio encrypts the value
# with the secret, which the page itself is given: it is fixed only so that what a browser
# remembers still reads after a restart (a chat's id is no secret).
LAST_CHAT_KEY = "hearth-last-chat"
LAST_CHAT_SECRET = "hearth-last-chat"


def build(ctx: AppContext, tabs: gr.Tabs) -> TabHandle:
    """The tab; `tabs` is the app's top-level Tabs, for the link to Models."""
    w = layout(ctx)
    switch = _switch_fn(ctx, w)
    _wire_generation(w, ctx)
    chat_side.wire(w, ctx, switch)
    chat_selection.wire(w, ctx)
    chat_panels.wire(w, ctx, switch)
    prompt_inspector.wire(w.inspector, w.view, lambda view, choice: chat_inspector.inspect(ctx, view, choice))
    _wire_settings(w, ctx)
    chat_top.wire(w.top, tabs)

    # The browser keeps the chat it was last in, so reopening the app opens it again.
    w.view.change(
        lambda view: view.session_id if view else None, [w.view], [w.last_chat],
        queue=False, show_progress="hidden", api_visibility="undocumented",
    )  # fmt: skip

    def load(view: ChatView | None, last_chat: Any = None) -> tuple[Any, ...]:
        return (logic.model_note(ctx), *switch(logic.reopen(ctx, view, last_chat)))

    return TabHandle(load, w.view, [w.top.model_note, *w.switch_outputs], remembers=[w.last_chat])


def layout(ctx: AppContext) -> ChatWidgets:
    view = gr.State(None)
    pending = gr.State(False)  # a swipe right past the newest version asks for a new one
    top = chat_top.layout()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=260, elem_id="chat-sidebar"):
            side = chat_side.layout(ctx)
        with gr.Column(scale=4):
            older = gr.Button("Show older messages", visible=False, size="sm", elem_id="show-older")
            history = chatbot("Chat", elem_id="history", height=480)
            # The reply streams here, so each update re-renders one message, not the history.
            live = chatbot(
                "Reply", elem_id="live-reply", height=None, max_height=320, visible=False, show_label=False
            )
            with gr.Row(elem_id="reply-tools"):
                swipe_left = gr.Button("◀", size="sm", scale=0, min_width=44, elem_id="swipe-left")
                swipe_label = gr.Markdown("", elem_id="swipe-label")
                swipe_right = gr.Button("▶", size="sm", scale=0, min_width=44, elem_id="swipe-right")
                regenerate = gr.Button("Regenerate", size="sm", elem_id="regenerate")
                cont = gr.Button("Continue", size="sm", elem_id="continue")
                impersonate = gr.Button("Impersonate", size="sm", elem_id="impersonate")
            with gr.Row(elem_id="message-row"):
                message = gr.Textbox(
                    placeholder="Message (Enter to send, Shift+Enter for a new line)",
                    label="Message", show_label=False, lines=1, max_lines=8, scale=6, elem_id="message",
                )  # fmt: skip
                attach_button = chat_attach.button()
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                stop = gr.Button("Stop", variant="stop", scale=1, visible=False, elem_id="stop")
            attach = chat_attach.layout(attach_button)
            status = gr.Markdown("", elem_id="context-status")
            selection = chat_selection.layout()
            inspector = prompt_inspector.layout("chat")
            prompt = prompt_panel.layout(ctx)
            sampler = sampler_panel.layout(ctx.presets())
            panels = chat_panels.layout(ctx)
    return ChatWidgets(
        view=view, pending=pending, side=side, older=older, history=history, live=live,
        swipe_left=swipe_left, swipe_label=swipe_label, swipe_right=swipe_right, regenerate=regenerate,
        cont=cont, impersonate=impersonate, message=message, attach=attach, send=send, stop=stop,
        status=status, selection=selection, prompt=prompt, sampler=sampler,
        panels=panels, inspector=inspector, top=top,
        last_chat=gr.BrowserState(None, storage_key=LAST_CHAT_KEY, secret=LAST_CHAT_SECRET, render=False),
    )  # fmt: skip


# -- generating ---------------------------------------------------------------------------


def _wire_generation(w: ChatWidgets, ctx: AppContext) -> None:
    @shown_errors
    def on_send(message: str, picture: str | None, *values: Any) -> tuple[Any, ...]:
        view, settings = read_settings(values)
        view = logic.send(ctx, view, message, settings, chat_attach.picture_bytes(picture))
        history, hidden, view = logic.visible_history(ctx, view)
        sessions = chat_side.sessions_update(ctx, view)
        older = gr.update(visible=hidden > 0)
        return "", *w.attach.cleared, history, older, view, sessions, *_writing(True)()

    @shown_errors
    def on_regenerate(view: ChatView | None) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        last = chat_actions.last_message(ctx, view.session_id)
        if last is None:
            raise InputError("There is nothing to regenerate yet: send a message first.")
        return view, last.role == "assistant", *_writing(True)()

    @shown_errors
    def on_swipe(view: ChatView | None, step: int) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        wants_new = chat_actions.swipe(ctx, view.session_id, step)
        history, hidden, view = logic.visible_history(ctx, view)
        label = chat_actions.swipe_label(ctx, view.session_id)
        return history, gr.update(visible=hidden > 0), label, view, wants_new

    reply = _generator(ctx, "reply")
    swipe = _generator(ctx, "swipe")
    cont = _generator(ctx, "continue")

    async def regenerate(view: ChatView | None, pending: bool, request: gr.Request) -> AsyncIterator[Any]:
        # A chat that ends with a reply gets a new version of it; one that ends with the
        # user's message gets its first reply.
        async for item in (swipe if pending else reply)(view, request):
            yield item

    streaming: dict[str, Any] = {"outputs": [w.live], "concurrency_id": LLM_QUEUE, "concurrency_limit": 1}
    done: dict[str, Any] = {"fn": _done_fn(ctx), "inputs": [w.view], "outputs": w.reply_outputs}
    send_args: dict[str, Any] = {
        "fn": on_send,
        "inputs": [w.message, w.attach.picture, *w.settings_inputs],
        "outputs": [
            w.message, w.attach.picture, w.attach.remove, w.history, w.older, w.view, w.side.sessions,
            w.send, w.stop,
        ],  # fmt: skip
        **EDITS,
    }
    hidden: dict[str, Any] = {"api_visibility": "undocumented"}
    # Send turns into Stop while the model writes, as in SillyTavern; meanwhile the page's
    # script ignores Enter in the message box, and `logic.send` refuses a message.
    writing: dict[str, Any] = {"fn": _writing(True), "outputs": [w.send, w.stop], "queue": False, **hidden}
    idle: dict[str, Any] = {"fn": _writing(False), "outputs": [w.send, w.stop], "queue": False, **hidden}
    # Sending (and Regenerate) turn Send into Stop themselves: each event before the reply
    # starts is a round trip the user waits through.
    runs = [
        w.send.click(**send_args, api_name="send").success(reply, [w.view], **streaming, api_name="reply"),
        w.message.submit(**send_args, **hidden).success(reply, [w.view], **streaming, **hidden),
    ]
    regen_outputs = [w.view, w.pending, w.send, w.stop]
    regen = w.regenerate.click(on_regenerate, [w.view], regen_outputs, api_name="regenerate", **EDITS)
    runs.append(regen.success(regenerate, [w.view, w.pending], **streaming, **hidden))
    for button, step in ((w.swipe_left, -1), (w.swipe_right, 1)):
        swiped = button.click(
            lambda view, s=step: on_swipe(view, s),
            [w.view],
            [w.history, w.older, w.swipe_label, w.view, w.pending],
            api_visibility="undocumented",
            **EDITS,
        )
        if step > 0:
            new_version = swiped.success(**{**writing, "fn": _writing_if, "inputs": [w.pending]})
            runs.append(
                new_version.success(_only_if_pending(swipe), [w.view, w.pending], **streaming, **hidden)
            )
    runs.append(w.cont.click(**writing).success(cont, [w.view], **streaming, api_name="continue"))
    for event in runs:
        event.then(**done, api_visibility="undocumented").then(**idle)
    imp = w.impersonate.click(**writing).success(
        _impersonate_fn(ctx),
        [w.view],
        [w.message],
        concurrency_id=LLM_QUEUE,
        concurrency_limit=1,
        api_name="impersonate",
    )
    imp.then(**idle)
    w.stop.click(
        _stop_fn(ctx),
        [w.view],
        w.reply_outputs,
        cancels=[*runs, imp],
        api_name="stop",
        concurrency_limit=None,
    ).then(**idle)


def _writing(on: bool) -> Callable[[], tuple[Any, Any]]:
    """Values for (Send, Stop): Stop in Send's place while the model writes."""
    return lambda: (gr.update(visible=not on), gr.update(visible=on))


def _writing_if(pending: bool) -> tuple[Any, Any]:
    """A swipe right writes only when it asks for a new version."""
    return _writing(True)() if pending else (gr.skip(), gr.skip())


def _generator(ctx: AppContext, mode: chat_reply.ReplyMode) -> Callable[..., AsyncIterator[Any]]:
    @shown_errors
    async def generate(view: ChatView | None, request: gr.Request) -> AsyncIterator[Any]:
        # Gradio carries the frame with a marker, then the finished reply; in between the
        # page follows the reply over a cheaper channel of its own (services.live).
        run = await asyncio.to_thread(chat_reply.start, ctx, view, owner_of(request), mode)
        view = logic.ensure_session(ctx, view)
        frame = bubbles.live(logic.reply_speaker(ctx, view))  # the name line, made once
        prefix = ""
        if mode == "continue":
            last = chat_actions.last_message(ctx, view.session_id)
            prefix = bubbles.message_html(last.text, last.meta) if last is not None else ""
        shown = chat_reply.shown_for(run)
        token = ctx.live.follow(run, shown)
        yield gr.update(visible=True, value=[{"role": "assistant", "content": frame(prefix, token)}])
        await finished(run)
        yield [{"role": "assistant", "content": frame(shown(run.text))}]
        _report(run, mode)

    return generate


def _only_if_pending(gen: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def run(view: ChatView | None, pending: bool, request: gr.Request) -> AsyncIterator[Any]:
        if not pending:
            yield gr.skip()
            return
        async for item in gen(view, request):
            yield item

    return run


def _impersonate_fn(ctx: AppContext) -> Callable[..., AsyncIterator[str]]:
    @shown_errors
    async def impersonate(view: ChatView | None, request: gr.Request) -> AsyncIterator[str]:
        run = await asyncio.to_thread(chat_reply.start, ctx, view, owner_of(request), "impersonate")
        async for _ in chat_reply.stream(run):
            yield run.text.strip()
        yield run.text.strip()

    return impersonate


def _done_fn(ctx: AppContext) -> Callable[..., tuple[Any, ...]]:
    @shown_errors
    def done(view: ChatView | None) -> tuple[Any, ...]:
        return final_outputs(ctx, logic.ensure_session(ctx, view))

    return done


def _stop_fn(ctx: AppContext) -> Callable[..., tuple[Any, ...]]:
    @shown_errors
    def stop(view: ChatView | None, request: gr.Request) -> tuple[Any, ...]:
        run = ctx.models.stop_and_wait(owner_of(request))
        # The chat as saved shows next, so what went wrong is said without raising.
        for problem in _failures(run) if run is not None else []:
            warn(problem)
        return final_outputs(ctx, logic.ensure_session(ctx, view))

    return stop


def final_outputs(ctx: AppContext, view: ChatView) -> tuple[Any, ...]:
    """Hide the live reply and show the saved history (the reply is in it now)."""
    history, hidden, view = logic.visible_history(ctx, view)
    status = chat_reply.context_status(ctx, view)
    label = chat_actions.swipe_label(ctx, view.session_id)
    return gr.update(visible=False, value=[]), history, gr.update(visible=hidden > 0), status, label, view


def _report(run: Run, mode: chat_reply.ReplyMode) -> None:
    """Say how a finished reply went, as a toast: a failure, or an empty reply. Never
    raised: in Gradio 6 an error ends the chain of events, and the page would stay with
    Stop in Send's place and the unfinished reply showing."""
    problems = _failures(run)
    if problems:
        warn(" ".join(problems))
    elif chat_reply.came_back_empty(run, mode):
        warn("The model's reply was empty, so nothing was added. Try Regenerate, or raise the temperature.")


def _failures(run: Run) -> list[str]:
    problems = [f"The reply could not be saved: {problem}" for problem in run.callback_errors]
    if run.error is not None:
        problems.append(f"The model failed while generating: {run.error}")
    return problems


# -- switching chats and settings -------------------------------------------------------------


def _switch_fn(ctx: AppContext, w: ChatWidgets) -> Switch:
    """A function giving the values of `w.switch_outputs` for a chat."""

    def switch(view: ChatView | None) -> tuple[Any, ...]:
        ctx.wait_ready()
        view = logic.ensure_session(ctx, view)
        session = ctx.store.sessions.get(view.session_id)
        settings = logic.settings_for(ctx, session)
        history, hidden, view = logic.visible_history(ctx, view)
        return (
            view,
            chat_side.sessions_update(ctx, view),
            history,
            gr.update(visible=hidden > 0),
            *prompt_panel.values(ctx, session, settings),
            gr.update(choices=sampler_panel.preset_choices(ctx.presets()), value=settings.preset),
            *ordered_values(settings.params),
            chat_reply.context_status(ctx, view),
            chat_actions.swipe_label(ctx, view.session_id),
            *chat_side.character_values(ctx, view),
            *chat_selection.closed(),
            *chat_panels.values(ctx, view),
        )

    return switch


def _wire_settings(w: ChatWidgets, ctx: AppContext) -> None:
    @shown_errors
    def on_settings(*values: Any) -> None:
        view, settings = read_settings(values)
        logic.save_settings(ctx, logic.ensure_session(ctx, view), settings)

    @shown_errors
    def on_format(*values: Any) -> str:
        """Save; the box follows the new format's default if it showed the old one."""
        view, settings = read_settings(values)
        session = logic.save_settings(ctx, logic.ensure_session(ctx, view), settings)
        return logic.system_prompt_shown(ctx, session)

    @shown_errors
    def on_preset(*values: Any) -> list[Any]:
        view, settings = read_settings(values)
        preset = logic.find_preset(ctx, settings.preset)
        logic.save_settings(ctx, logic.ensure_session(ctx, view), settings.with_params(preset.params))
        return ordered_values(preset.params)

    quiet: dict[str, Any] = {"api_visibility": "undocumented", **EDITS}
    w.prompt.system.blur(on_settings, w.settings_inputs, None, **quiet)
    w.prompt.format.input(on_format, w.settings_inputs, [w.prompt.system], **quiet)
    for slider in w.sampler.sliders:
        slider.release(on_settings, w.settings_inputs, None, **quiet)
    for box in w.sampler.texts:
        box.blur(on_settings, w.settings_inputs, None, **quiet)
    w.sampler.preset.input(on_preset, w.settings_inputs, w.sampler.controls, **quiet)
    prompt_panel.wire(w.prompt, w.view, w.status, ctx, **quiet)
    chat_attach.wire(w.attach, ctx, **quiet)
    w.older.click(_older_fn(ctx), [w.view], [w.history, w.older, w.view], **quiet)
    sampler_panel.wire_save(w.sampler, ctx, "Saved from the Chat tab", api_name="save_preset")


def _older_fn(ctx: AppContext) -> Callable[..., tuple[Any, ...]]:
    @shown_errors
    def older(view: ChatView | None) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        history, hidden, view = logic.visible_history(ctx, replace(view, window=view.window + logic.WINDOW))
        return history, gr.update(visible=hidden > 0), view

    return older
