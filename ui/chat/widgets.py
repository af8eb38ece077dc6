"""The Chat tab's widgets in one place, so its modules can wire events across parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from presets.samplers import DEFAULT_PRESET
from services.chat.logic import AUTO_FORMAT, ChatSettings, ChatView
from ui.chat.attach import AttachWidgets
from ui.chat.prompt_panel import PromptWidgets
from ui.prompt_inspector import InspectorWidgets
from ui.sampler_panel import SamplerWidgets, params_from

# Listeners that change a chat run one at a time, in the order they were triggered, so
# a settings save cannot overtake the message it belongs to.
EDITS: dict[str, Any] = {"concurrency_id": "chat-edits", "concurrency_limit": 1}
# Fills `ChatWidgets.switch_outputs` for a chat (built by the tab, used by its sections).
Switch = Callable[[ChatView | None], tuple[Any, ...]]


@dataclass
class SideWidgets:
    """The sidebar: who you talk to, and which chat."""

    character: gr.Dropdown
    avatar: gr.Image
    notes: gr.Markdown
    gallery_panel: gr.Accordion
    search: gr.Textbox
    gallery: gr.Gallery
    import_card: gr.UploadButton
    new_character: gr.Button
    duplicate: gr.Button
    delete_character: gr.Button
    confirm_character_row: gr.Row
    confirm_character: gr.Button
    keep_character: gr.Button
    new_chat: gr.Button
    sessions: gr.Dropdown
    rename_box: gr.Textbox
    rename: gr.Button
    delete_chat: gr.Button
    confirm_chat_row: gr.Row
    confirm_chat: gr.Button
    keep_chat: gr.Button

    @property
    def character_outputs(self) -> list[Any]:
        return [self.character, self.avatar, self.notes]


@dataclass
class SelectionWidgets:
    """The panel for the message clicked in the history, the actions on each bubble, and Undo."""

    panel: gr.Group
    label: gr.Markdown
    edit_box: gr.Textbox
    save: gr.Button
    delete: gr.Button
    hide: gr.Button
    branch: gr.Button
    close: gr.Button
    action: gr.Textbox  # hidden: "delete:4", set by the page's script when a bubble's action is clicked
    act: gr.Button  # hidden: the script clicks it after setting `action`
    undo_row: gr.Row
    undo_label: gr.Markdown
    undo: gr.Button
    deleted: gr.State  # (chat session id, the message) of the latest delete, for Undo

    @property
    def outputs(self) -> list[Any]:
        return [self.panel, self.label, self.edit_box]


@dataclass
class PanelWidgets:
    fields: list[Any]  # character_edit.TEXT_FIELDS, greetings, tags, lore table
    avatar_upload: gr.Image
    save_character: gr.Button
    export_png: gr.Button
    export_json: gr.Button
    export_charx: gr.Button
    persona: gr.Dropdown
    persona_name: gr.Textbox
    persona_description: gr.Textbox
    persona_save: gr.Button
    persona_new: gr.Button
    persona_default: gr.Button
    persona_lock: gr.Checkbox
    persona_avatar: gr.Image
    worlds: gr.CheckboxGroup
    world_upload: gr.UploadButton
    export_chat: gr.Button
    export_chat_text: gr.Button
    import_chat: gr.UploadButton
    download: gr.File
    attach_row: gr.Row  # asks which character an imported chat belongs to
    attach_note: gr.Markdown
    attach_choice: gr.Dropdown
    attach: gr.Button
    attach_session: gr.State

    @property
    def outputs(self) -> list[Any]:
        return [
            *self.fields,
            self.persona,
            self.persona_name,
            self.persona_description,
            self.persona_lock,
            self.persona_avatar,
            self.worlds,
        ]


@dataclass
class TopWidgets:
    """The line above the chat (ui/chat/top.py)."""

    menu: gr.Button  # on a phone, shows or hides the sidebar
    model_note: gr.Markdown
    to_models: gr.Button


@dataclass
class ChatWidgets:
    view: gr.State
    pending: gr.State
    side: SideWidgets
    older: gr.Button
    history: gr.Chatbot
    live: gr.Chatbot
    swipe_left: gr.Button
    swipe_label: gr.Markdown
    swipe_right: gr.Button
    regenerate: gr.Button
    cont: gr.Button
    impersonate: gr.Button
    message: gr.Textbox
    attach: AttachWidgets
    send: gr.Button
    stop: gr.Button
    status: gr.Markdown
    selection: SelectionWidgets
    prompt: PromptWidgets
    sampler: SamplerWidgets
    panels: PanelWidgets
    inspector: InspectorWidgets
    top: TopWidgets
    last_chat: gr.BrowserState  # the chat this browser was last in, to reopen it

    @property
    def settings_inputs(self) -> list[Any]:
        """The chat and its settings, in the order `read_settings` expects."""
        sampler = self.sampler
        return [self.view, self.prompt.system, self.prompt.format, sampler.preset, *sampler.controls]

    @property
    def reply_outputs(self) -> list[Any]:
        """What changes once a reply has ended (or was stopped)."""
        return [self.live, self.history, self.older, self.status, self.swipe_label, self.view]

    @property
    def switch_outputs(self) -> list[Any]:
        """Everything that changes when the tab switches to another chat (see tab._switch_fn)."""
        return [
            self.view, self.side.sessions, self.history, self.older, *self.prompt.outputs,
            self.sampler.preset, *self.sampler.controls, self.status, self.swipe_label,
            *self.side.character_outputs, *self.selection.outputs, *self.panels.outputs,
        ]  # fmt: skip


def chatbot(label: str, **kwargs: Any) -> gr.Chatbot:
    """A Chatbot for messages rendered by `services.render.inert_html`.

    Each message is one line of HTML, which Gradio's Markdown pass keeps as it is; its
    sanitizer stays on behind it. No per-message copy button: it would copy that HTML,
    not the message (the message panel shows the text itself).
    """
    return gr.Chatbot(
        label=label,
        sanitize_html=True,
        allow_tags=False,
        render_markdown=True,
        group_consecutive_messages=False,
        feedback_options=None,
        buttons=[],
        **kwargs,
    )


def read_settings(values: tuple[Any, ...]) -> tuple[ChatView | None, ChatSettings]:
    """Unpack the values of `settings_inputs` (validating the sampler values)."""
    view, system, fmt, preset, *sliders = values
    settings = ChatSettings(
        system_prompt=system or "",
        format_choice=fmt or AUTO_FORMAT,
        preset=preset or DEFAULT_PRESET,
        params=params_from(sliders),
    )
    return view, settings
