"""The line above the chat: the phone's menu button, the loaded model, and the way to Models."""

from __future__ import annotations

import gradio as gr

from ui.chat.widgets import TopWidgets


def layout() -> TopWidgets:
    with gr.Row(equal_height=True, elem_id="chat-top"):
        # On a phone the sidebar folds away; this shows it (the page's script, ui/script.py).
        menu = gr.Button(
            "☰ Chats", size="sm", scale=0, min_width=80, elem_id="menu-toggle", elem_classes="hearth-menu"
        )
        model_note = gr.Markdown(elem_id="model-note")  # services.chat.logic.model_note
        to_models = gr.Button("Models", size="sm", scale=0, min_width=80, elem_id="to-models")
    return TopWidgets(menu=menu, model_note=model_note, to_models=to_models)


def wire(top: TopWidgets, tabs: gr.Tabs) -> None:
    """`tabs` is the app's top-level Tabs, which the link to Models switches."""
    top.to_models.click(lambda: gr.Tabs(selected="models"), None, tabs, api_visibility="undocumented")
    top.menu.click(None, js="() => window.hearth.toggleMenu('chat')")
