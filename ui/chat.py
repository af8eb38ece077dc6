"""The Chat tab: layout first, then events. The logic lives in `ui.chat_logic`.

Streaming cost does not grow with the chat: the history Chatbot holds a window of
recent messages and is updated once per turn, while the reply streams into a small
separate Chatbot, throttled to a few updates per second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from engine import Run
from presets import DEFAULT_PRESET, SamplerPreset
from ui import chat_logic as logic
from ui.chat_logic import AUTO_FORMAT, WINDOW, ChatSettings, ChatView
from ui.context import AppContext
from ui.errors import shown_errors, warn
from ui.sampler_panel import SamplerPanel, build_sampler_panel, params_from, preset_choices, slider_values

LLM_QUEUE = "llm"  # every listener that generates shares this queue
# Listeners that change a chat run one at a time, in the order they were triggered, so
# a settings save cannot overtake the message it belongs to.
EDITS: dict[str, Any] = {"concurrency_id": "chat-edits", "concurrency_limit": 1}


@dataclass
class ChatTab:
    """What other tabs may need from the Chat tab."""

    view: gr.State
    history: gr.Chatbot
    status: gr.Markdown
    format: gr.Dropdown
    load_outputs: list[Any]
    load_fn: Any


def build(ctx: AppContext) -> ChatTab:
    w = _layout(ctx)
    _wire(ctx, w)
    return ChatTab(w.view, w.history, w.status, w.format, w.view_outputs, _switch_outputs(ctx))


@dataclass
class _Widgets:
    view: gr.State
    new: gr.Button
    sessions: gr.Dropdown
    rename_box: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    confirm_row: gr.Row
    confirm: gr.Button
    cancel: gr.Button
    older: gr.Button
    history: gr.Chatbot
    live: gr.Chatbot
    message: gr.Textbox
    send: gr.Button
    stop: gr.Button
    regenerate: gr.Button
    status: gr.Markdown
    system: gr.Textbox
    format: gr.Dropdown
    sampler: SamplerPanel

    @property
    def view_outputs(self) -> list[Any]:
        """Everything that changes when the tab switches to another chat."""
        return [
            self.view, self.sessions, self.history, self.older, self.system, self.format,
            self.sampler.preset, *self.sampler.sliders, self.status,
        ]  # fmt: skip

    @property
    def settings_inputs(self) -> list[Any]:
        """The chat and its settings, in the order `_read_settings` expects."""
        return [self.view, self.system, self.format, self.sampler.preset, *self.sampler.sliders]

    @property
    def reply_outputs(self) -> list[Any]:
        """What changes once a reply has ended (or was stopped)."""
        return [self.live, self.history, self.older, self.status]


def _layout(ctx: AppContext) -> _Widgets:
    view = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=240, elem_id="chat-sidebar"):
            new = gr.Button("New chat", variant="secondary", elem_id="new-chat")
            # Choices change at run time; handlers validate what comes back.
            sessions = gr.Dropdown(
                label="Chats", choices=[], filterable=True, allow_custom_value=True, elem_id="session-list"
            )
            with gr.Row():
                rename_box = gr.Textbox(label="Title", scale=3, elem_id="rename-box")
                rename = gr.Button("Rename", scale=1, elem_id="rename")
            delete = gr.Button("Delete chat", variant="stop", size="sm", elem_id="delete-chat")
            with gr.Row(visible=False) as confirm_row:
                confirm = gr.Button("Delete for good", variant="stop", size="sm", elem_id="confirm-delete")
                cancel = gr.Button("Keep it", size="sm", elem_id="cancel-delete")
        with gr.Column(scale=4):
            older = gr.Button("Show older messages", visible=False, size="sm", elem_id="show-older")
            history = _chatbot("Chat", elem_id="history", height=480)
            # The reply streams here, so each update re-renders one message, not the history.
            live = _chatbot(
                "Reply", elem_id="live-reply", height=None, max_height=320, visible=False, show_label=False
            )
            with gr.Row():
                message = gr.Textbox(
                    placeholder="Message (Enter to send, Shift+Enter for a new line)",
                    label="Message", show_label=False, lines=1, max_lines=8, scale=6, elem_id="message",
                )  # fmt: skip
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
                stop = gr.Button("Stop", variant="stop", scale=1, elem_id="stop")
            with gr.Row():
                regenerate = gr.Button("Regenerate", size="sm", elem_id="regenerate")
                status = gr.Markdown("", elem_id="context-status")
            with gr.Accordion("Prompt", open=False):
                system = gr.Textbox(label="System prompt", lines=3, elem_id="system-prompt")
                fmt = gr.Dropdown(
                    label="Prompt format",
                    choices=logic.format_choices(ctx),
                    value=AUTO_FORMAT,
                    allow_custom_value=True,
                    elem_id="prompt-format",
                )
            sampler = build_sampler_panel(ctx.presets())
    return _Widgets(
        view, new, sessions, rename_box, rename, delete, confirm_row, confirm, cancel, older,
        history, live, message, send, stop, regenerate, status, system, fmt, sampler,
    )  # fmt: skip


def _chatbot(label: str, **kwargs: Any) -> gr.Chatbot:
    return gr.Chatbot(
        label=label,
        sanitize_html=True,
        allow_tags=False,
        render_markdown=True,
        group_consecutive_messages=False,
        feedback_options=None,
        buttons=["copy"],
        **kwargs,
    )


# -- events ----------------------------------------------------------------------------


def _wire(ctx: AppContext, w: _Widgets) -> None:
    switch = _switch_outputs(ctx)

    @shown_errors
    def on_send(message: str, *values: Any) -> tuple[Any, ...]:
        view, settings = _read_settings(values)
        view = logic.send(ctx, view, message, settings)
        history, hidden = logic.visible_history(ctx, view)
        return "", history, gr.update(visible=hidden > 0), view, _sessions_update(ctx, view)

    @shown_errors
    async def on_reply(view: ChatView | None, request: gr.Request) -> AsyncIterator[Any]:
        # Streaming touches one output with plain values: every gr.update() or gr.skip()
        # makes Gradio build a component, and on a small machine each bit of CPU spent
        # here is taken from the model's own threads.
        run, _ = await asyncio.to_thread(logic.start_reply, ctx, view, _owner(request))
        yield gr.update(visible=True, value=[{"role": "assistant", "content": ""}])
        async for text in logic.stream_reply(run):
            yield [{"role": "assistant", "content": text}]
        _warn_about(run)

    @shown_errors
    def on_reply_done(view: ChatView | None) -> tuple[Any, ...]:
        return _final(ctx, logic.ensure_session(ctx, view))

    @shown_errors
    def on_stop(view: ChatView | None, request: gr.Request) -> tuple[Any, ...]:
        owner = _owner(request)
        run = ctx.models.active_run(owner)
        ctx.models.stop(owner)
        if run is not None:
            run.wait(timeout=60)
            _warn_about(run)
        return _final(ctx, logic.ensure_session(ctx, view))

    @shown_errors
    def on_regenerate(view: ChatView | None) -> tuple[Any, ...]:
        view = logic.prepare_regenerate(ctx, view)
        history, hidden = logic.visible_history(ctx, view)
        return history, gr.update(visible=hidden > 0), view

    send_args = dict(
        fn=on_send,
        inputs=[w.message, *w.settings_inputs],
        outputs=[w.message, w.history, w.older, w.view, w.sessions],
        **EDITS,
    )
    reply_args = dict(
        fn=on_reply, inputs=[w.view], outputs=[w.live], concurrency_id=LLM_QUEUE, concurrency_limit=1
    )
    done_args = dict(
        fn=on_reply_done, inputs=[w.view], outputs=w.reply_outputs, api_visibility="undocumented"
    )
    sent = w.send.click(api_name="send", **send_args)
    submitted = w.message.submit(api_visibility="undocumented", **send_args)
    regenerated = w.regenerate.click(
        on_regenerate, [w.view], [w.history, w.older, w.view], api_name="regenerate", **EDITS
    )
    replies = [
        sent.success(api_name="reply", **reply_args),
        submitted.success(api_visibility="undocumented", **reply_args),
        regenerated.success(api_visibility="undocumented", **reply_args),
    ]
    for reply in replies:
        reply.then(**done_args)
    w.stop.click(on_stop, [w.view], w.reply_outputs, cancels=replies, api_name="stop", concurrency_limit=None)
    _wire_sessions(ctx, w, switch)
    _wire_settings(ctx, w)


def _wire_sessions(ctx: AppContext, w: _Widgets, switch: Any) -> None:
    @shown_errors
    def on_new(*values: Any) -> tuple[Any, ...]:
        return switch(logic.new_chat(ctx, _read_settings(values)[1]))

    @shown_errors
    def on_select(view: ChatView | None, session_id: str) -> tuple[Any, ...]:
        return switch(ChatView(session_id=session_id) if session_id else logic.ensure_session(ctx, view))

    @shown_errors
    def on_rename(view: ChatView | None, title: str) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        logic.rename(ctx, view, title)
        return _sessions_update(ctx, view), ""

    @shown_errors
    def on_delete(view: ChatView | None) -> tuple[Any, ...]:
        view = logic.delete(ctx, logic.ensure_session(ctx, view))
        return (gr.update(visible=False), *switch(view))

    @shown_errors
    def on_older(view: ChatView | None) -> tuple[Any, ...]:
        view = replace(logic.ensure_session(ctx, view), window=(view.window if view else WINDOW) + WINDOW)
        history, hidden = logic.visible_history(ctx, view)
        return history, gr.update(visible=hidden > 0), view

    w.new.click(on_new, w.settings_inputs, w.view_outputs, api_name="new_chat", **EDITS)
    w.sessions.input(on_select, [w.view, w.sessions], w.view_outputs, api_visibility="undocumented")
    w.rename.click(on_rename, [w.view, w.rename_box], [w.sessions, w.rename_box], api_name="rename", **EDITS)
    w.delete.click(lambda: gr.update(visible=True), None, w.confirm_row, api_visibility="undocumented")
    w.cancel.click(lambda: gr.update(visible=False), None, w.confirm_row, api_visibility="undocumented")
    w.confirm.click(on_delete, [w.view], [w.confirm_row, *w.view_outputs], api_name="delete_chat", **EDITS)
    w.older.click(on_older, [w.view], [w.history, w.older, w.view], api_visibility="undocumented")


def _wire_settings(ctx: AppContext, w: _Widgets) -> None:
    @shown_errors
    def on_settings(*values: Any) -> None:
        view, settings = _read_settings(values)
        logic.save_settings(ctx, logic.ensure_session(ctx, view), settings)

    @shown_errors
    def on_preset(*values: Any) -> list[Any]:
        view, settings = _read_settings(values)
        preset = logic.find_preset(ctx, settings.preset)
        settings = replace(settings, params=preset.params)
        logic.save_settings(ctx, logic.ensure_session(ctx, view), settings)
        return slider_values(preset.params)

    @shown_errors
    def on_save_preset(name: str, *values: Any) -> tuple[Any, ...]:
        name = " ".join(name.split())
        if not name:
            raise gr.Error("Give the preset a name first.")
        if name in ctx.builtin_presets:
            raise gr.Error(f"{name} is a built-in preset; pick another name.")
        ctx.store.save_preset(
            SamplerPreset(name, "Saved from the Chat tab", params_from(list(values)), False)
        )
        return gr.update(choices=preset_choices(ctx.presets()), value=name), ""

    quiet: dict[str, Any] = {"api_visibility": "undocumented", **EDITS}
    w.system.blur(on_settings, w.settings_inputs, None, **quiet)
    w.format.input(on_settings, w.settings_inputs, None, **quiet)
    for slider in w.sampler.sliders:
        slider.release(on_settings, w.settings_inputs, None, **quiet)
    w.sampler.preset.input(on_preset, w.settings_inputs, w.sampler.sliders, **quiet)
    w.sampler.save_button.click(
        on_save_preset,
        [w.sampler.save_name, *w.sampler.sliders],
        [w.sampler.preset, w.sampler.save_name],
        api_name="save_preset",
    )


# -- helpers ---------------------------------------------------------------------------


def _read_settings(values: tuple[Any, ...]) -> tuple[ChatView | None, ChatSettings]:
    """Unpack the values of `settings_inputs` (validating the sampler values)."""
    view, system, fmt, preset, *sliders = values
    settings = ChatSettings(
        system_prompt=system or "",
        format_choice=fmt or AUTO_FORMAT,
        preset=preset or DEFAULT_PRESET,
        params=params_from(sliders),
    )
    return view, settings


def _switch_outputs(ctx: AppContext) -> Any:
    """A function giving the values of `view_outputs` for a chat."""

    def switch(view: ChatView | None) -> tuple[Any, ...]:
        ctx.wait_ready()
        view = logic.ensure_session(ctx, view)
        session = ctx.store.sessions.get(view.session_id)
        settings = logic.settings_for(ctx, session)
        history, hidden = logic.visible_history(ctx, view)
        return (
            view,
            _sessions_update(ctx, view),
            history,
            gr.update(visible=hidden > 0),
            settings.system_prompt,
            gr.update(choices=logic.format_choices(ctx), value=settings.format_choice),
            gr.update(choices=preset_choices(ctx.presets()), value=settings.preset),
            *slider_values(settings.params),
            logic.context_status(ctx, view),
        )

    return switch


def _final(ctx: AppContext, view: ChatView) -> tuple[Any, ...]:
    """Hide the live reply and show the saved history (the reply is in it now)."""
    history, hidden = logic.visible_history(ctx, view)
    status = logic.context_status(ctx, view)
    return gr.update(visible=False, value=[]), history, gr.update(visible=hidden > 0), status


def _warn_about(run: Run) -> None:
    for problem in run.callback_errors:
        warn(f"The reply could not be saved: {problem}")
    if run.error is not None:
        warn(f"The model failed while generating: {run.error}")


def _sessions_update(ctx: AppContext, view: ChatView) -> Any:
    return gr.update(choices=logic.session_choices(ctx), value=view.session_id)


def _owner(request: gr.Request | None) -> str:
    """Runs belong to the browser session that started them, so Stop is per user."""
    return (request.session_hash if request is not None else None) or "anonymous"
