"""The Chat tab's widgets in one place, so its modules can wire events across parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from presets.samplers import DEFAULT_PRESET
from services.chat.logic import AUTO_FORMAT, ChatSettings, ChatView
from ui.sampler_panel import SamplerPanel, params_from

LLM_QUEUE = "llm"  # every listener that generates shares this queue
# Listeners that change a chat run one at a time, in the order they were triggered, so
# a settings save cannot overtake the message it belongs to.
EDITS: dict[str, Any] = {"concurrency_id": "chat-edits", "concurrency_limit": 1}


@dataclass
class SideWidgets:
    """The sidebar: who you talk to, and which chat."""

    character: gr.Dropdown
    avatar: gr.Image
    notes: gr.Markdown
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
    """The panel for the message clicked in the history."""

    panel: gr.Group
    label: gr.Markdown
    edit_box: gr.Textbox
    save: gr.Button
    delete: gr.Button
    hide: gr.Button
    branch: gr.Button
    close: gr.Button

    @property
    def outputs(self) -> list[Any]:
        return [self.panel, self.label, self.edit_box]


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
    send: gr.Button
    stop: gr.Button
    status: gr.Markdown
    selection: SelectionWidgets
    system: gr.Textbox
    format: gr.Dropdown
    lore_placement: gr.Radio
    sampler: SamplerPanel
    panels: Any  # chat_panels.PanelWidgets

    @property
    def settings_inputs(self) -> list[Any]:
        """The chat and its settings, in the order `read_settings` expects."""
        return [self.view, self.system, self.format, self.sampler.preset, *self.sampler.sliders]

    @property
    def reply_outputs(self) -> list[Any]:
        """What changes once a reply has ended (or was stopped)."""
        return [self.live, self.history, self.older, self.status, self.swipe_label, self.view]

    @property
    def switch_outputs(self) -> list[Any]:
        """Everything that changes when the tab switches to another chat (see chat._switch_fn)."""
        return [
            self.view, self.side.sessions, self.history, self.older, self.system, self.format,
            self.lore_placement, self.sampler.preset, *self.sampler.sliders, self.status, self.swipe_label,
            *self.side.character_outputs, *self.selection.outputs, *self.panels.outputs,
        ]  # fmt: skip


def chatbot(label: str, **kwargs: Any) -> gr.Chatbot:
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
