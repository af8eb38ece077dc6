"""Acting on one message: from the actions under each bubble, or by clicking it (the panel
to edit it), and Undo for a delete.

A bubble's actions are HTML (`services.chat.bubbles`); the page's script (`ui/page.py`)
writes the one clicked into the hidden `action` box ("delete:4") and clicks the hidden
`act` button. Copy and the swipe arrows stay in the page: copying needs no server, and
the arrows press the swipe buttons below the chat.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import gradio as gr

from presets.errors import InputError
from services.chat import actions as chat_actions
from services.chat import logic
from services.chat.logic import ChatView
from services.context import AppContext
from services.models.words import md
from store.records import Message
from ui.chat.side import sessions_update
from ui.chat.widgets import EDITS, ChatWidgets, SelectionWidgets
from ui.errors import notify, shown_errors

ACTION = re.compile(r"(edit|hide|branch|delete):(\d+)")
PREVIEW = 60  # characters of a deleted message the Undo line quotes


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
    action = gr.Textbox(visible="hidden", elem_id="message-action")
    act = gr.Button("Act on a message", visible="hidden", elem_id="message-act")
    with gr.Row(visible=False, equal_height=True, elem_id="undo-row") as undo_row:
        undo_label = gr.Markdown(elem_id="undo-label")
        undo = gr.Button("Undo", size="sm", scale=0, min_width=90, elem_id="undo-delete")
    return SelectionWidgets(
        panel=panel, label=label, edit_box=edit_box, save=save, delete=delete, hide=hide, branch=branch,
        close=close, action=action, act=act, undo_row=undo_row, undo_label=undo_label, undo=undo,
        deleted=gr.State(None),
    )  # fmt: skip


def closed() -> tuple[Any, ...]:
    """Values for `SelectionWidgets.outputs` with the panel closed."""
    return gr.update(visible=False), "", ""


def undo_values(session_id: str, message: Message) -> tuple[Any, ...]:
    """Values for the Undo row and its state, after `message` was deleted."""
    text = " ".join(message.text.split())
    quote = text[:PREVIEW] + ("…" if len(text) > PREVIEW else "")
    label = f"Deleted message {message.seq + 1}: “{md(quote)}”"
    return gr.update(visible=True), label, (session_id, message)


def wire(w: ChatWidgets, ctx: AppContext) -> None:
    sel = w.selection
    quiet: dict[str, Any] = {"api_visibility": "undocumented", **EDITS}
    history_outputs = [w.history, w.older, w.view, *sel.outputs]
    undo_outputs = [sel.undo_row, sel.undo_label, sel.deleted]

    def opened(view: ChatView, seq: int) -> tuple[Any, ...]:
        """The view with `seq` selected, and the panel open on it."""
        message = ctx.store.sessions.message(view.session_id, seq)
        hidden = " · hidden from the prompt" if message.hidden else ""
        label = f"**Message {seq + 1}** · {message.role}{hidden}"
        return replace(view, selected=seq), gr.update(visible=True), label, message.text

    @shown_errors
    def on_select(view: ChatView | None, evt: gr.SelectData) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        if not 0 <= index < len(view.shown):
            raise InputError("That message is no longer there.")
        return opened(view, view.shown[index])

    def refreshed(view: ChatView) -> tuple[Any, ...]:
        history, hidden, view = logic.visible_history(ctx, replace(view, selected=None))
        return history, gr.update(visible=hidden > 0), view, *closed()

    def selected(view: ChatView | None) -> tuple[ChatView, int]:
        view = logic.ensure_session(ctx, view)
        if view.selected is None:
            raise InputError("Click a message in the chat first.")
        return view, view.selected

    @shown_errors
    def on_save(view: ChatView | None, text: str) -> tuple[Any, ...]:
        view, seq = selected(view)
        chat_actions.edit_message(ctx, view.session_id, seq, text)
        return refreshed(view)

    @shown_errors
    def on_delete(view: ChatView | None) -> tuple[Any, ...]:
        view, seq = selected(view)
        gone = chat_actions.delete_message(ctx, view.session_id, seq)
        return (*refreshed(view), *undo_values(view.session_id, gone))

    @shown_errors
    def on_undo(view: ChatView | None, deleted: tuple[str, Message] | None) -> tuple[Any, ...]:
        if not deleted:
            raise InputError("There is no deleted message to bring back.")
        session_id, message = deleted
        chat_actions.restore_message(ctx, session_id, message)
        return (*refreshed(logic.ensure_session(ctx, view)), gr.update(visible=False), "", None)

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
    sel.delete.click(
        on_delete, [w.view], [*history_outputs, *undo_outputs], api_name="delete_message", **EDITS
    )
    sel.undo.click(on_undo, [w.view, sel.deleted], [*history_outputs, *undo_outputs], **quiet)

    @shown_errors
    def on_act(view: ChatView | None, action: str) -> tuple[Any, ...]:
        """An action under a bubble: the values of `history_outputs`, the chat list, and Undo."""
        view = logic.ensure_session(ctx, view)
        found = ACTION.fullmatch(action or "")
        if found is None or int(found[2]) not in view.shown:
            raise InputError("That message is no longer there.")
        name, view = found[1], replace(view, selected=int(found[2]))
        skip = gr.skip()
        if name == "edit":
            return skip, skip, *opened(view, int(found[2])), skip, skip, skip, skip
        if name == "hide":
            return *on_hide(view), skip, skip, skip, skip
        if name == "branch":
            return *on_branch(view), skip, skip, skip
        deleted = on_delete(view)
        return *deleted[:6], skip, *deleted[6:]

    act_outputs = [*history_outputs, w.side.sessions, *undo_outputs]
    sel.act.click(on_act, [w.view, sel.action], act_outputs, **quiet)
    sel.hide.click(on_hide, [w.view], history_outputs, api_name="hide_message", **EDITS)
    sel.branch.click(on_branch, [w.view], [*history_outputs, w.side.sessions], api_name="branch", **EDITS)
    sel.close.click(lambda: closed(), None, sel.outputs, **quiet)
