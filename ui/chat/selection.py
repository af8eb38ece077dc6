"""Acting on one message: click it in the history, then edit, delete, hide or branch."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gradio as gr

from services.chat import actions as chat_actions
from services.chat import logic
from services.chat.logic import ChatView
from services.context import AppContext
from ui.chat.side import sessions_update
from ui.chat.widgets import EDITS, ChatWidgets, SelectionWidgets
from ui.errors import notify, shown_errors


def layout() -> SelectionWidgets:
    with gr.Group(visible=False, elem_id="message-panel") as panel:
        label = gr.Markdown(elem_id="message-label")
        edit_box = gr.Textbox(label="Edit the message", lines=3, max_lines=12, elem_id="message-edit")
        with gr.Row():
            save = gr.Button("Save edit", size="sm", variant="primary", elem_id="message-save")
            delete = gr.Button("Delete", size="sm", variant="stop", elem_id="message-delete")
            hide = gr.Button("Hide / unhide", size="sm", elem_id="message-hide")
            branch = gr.Button("Branch from here", size="sm", elem_id="message-branch")
            close = gr.Button("Close", size="sm", elem_id="message-close")
    return SelectionWidgets(panel, label, edit_box, save, delete, hide, branch, close)


def closed() -> tuple[Any, ...]:
    """Values for `SelectionWidgets.outputs` with the panel closed."""
    return gr.update(visible=False), "", ""


def wire(w: ChatWidgets, ctx: AppContext) -> None:
    sel = w.selection
    quiet: dict[str, Any] = {"api_visibility": "undocumented", **EDITS}
    history_outputs = [w.history, w.older, w.view, *sel.outputs]

    @shown_errors
    def on_select(view: ChatView | None, evt: gr.SelectData) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        if not 0 <= index < len(view.shown):
            raise gr.Error("That message is no longer there.")
        seq = view.shown[index]
        message = ctx.store.sessions.message(view.session_id, seq)
        hidden = " · hidden from the prompt" if message.hidden else ""
        label = f"**Message {seq + 1}** · {message.role}{hidden}"
        return replace(view, selected=seq), gr.update(visible=True), label, message.text

    def refreshed(view: ChatView) -> tuple[Any, ...]:
        history, hidden, view = logic.visible_history(ctx, replace(view, selected=None))
        return history, gr.update(visible=hidden > 0), view, *closed()

    def selected(view: ChatView | None) -> tuple[ChatView, int]:
        view = logic.ensure_session(ctx, view)
        if view.selected is None:
            raise gr.Error("Click a message in the chat first.")
        return view, view.selected

    @shown_errors
    def on_save(view: ChatView | None, text: str) -> tuple[Any, ...]:
        view, seq = selected(view)
        chat_actions.edit_message(ctx, view.session_id, seq, text)
        return refreshed(view)

    @shown_errors
    def on_delete(view: ChatView | None) -> tuple[Any, ...]:
        view, seq = selected(view)
        chat_actions.delete_message(ctx, view.session_id, seq)
        return refreshed(view)

    @shown_errors
    def on_hide(view: ChatView | None) -> tuple[Any, ...]:
        view, seq = selected(view)
        chat_actions.toggle_hidden(ctx, view.session_id, seq)
        return refreshed(view)

    @shown_errors
    def on_branch(view: ChatView | None) -> tuple[Any, ...]:
        view, seq = selected(view)
        session = chat_actions.branch(ctx, view.session_id, seq)
        notify(f"Started “{session.title}” from message {seq + 1}.")
        branched = logic.open_chat(ctx, session.id)
        return (*refreshed(branched), sessions_update(ctx, branched))

    w.history.select(on_select, [w.view], [w.view, *sel.outputs], **quiet)
    sel.save.click(on_save, [w.view, sel.edit_box], history_outputs, api_name="edit_message", **EDITS)
    sel.delete.click(on_delete, [w.view], history_outputs, api_name="delete_message", **EDITS)
    sel.hide.click(on_hide, [w.view], history_outputs, api_name="hide_message", **EDITS)
    sel.branch.click(on_branch, [w.view], [*history_outputs, w.side.sessions], api_name="branch", **EDITS)
    sel.close.click(lambda: closed(), None, sel.outputs, **quiet)
