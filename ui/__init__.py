"""The Gradio user interface: the only package that imports gradio."""

from __future__ import annotations

import gradio as gr

from ui import chat, models
from ui.context import AppContext

TITLE = "Hearth"
TAB_IDS = {"chat", "models"}  # the top-level tabs a model load may switch to
# System fonts only: Hearth runs offline, so nothing may be fetched from a font CDN.
THEME = gr.themes.Soft(
    primary_hue="orange",
    neutral_hue="stone",
    font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"],
)
CSS = """
#history button[aria-label="Clear"], #live-reply button[aria-label="Clear"] { display: none; }
#live-reply { margin-top: -12px; }
#context-status { text-align: right; opacity: 0.75; }
footer { display: none !important; }
"""


def build(ctx: AppContext) -> gr.Blocks:
    """The whole app: a header and one tab per mode, all sharing `ctx`."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown("## Hearth", elem_id="title")
        with gr.Tabs(elem_id="main-tabs") as tabs:
            with gr.Tab("Chat", id="chat"):
                chat_tab = chat.build(ctx)
            with gr.Tab("Models", id="models"):
                models_tab = models.build(ctx, tabs, TAB_IDS)
        for loaded in models_tab.loaded:
            loaded.success(
                chat_tab.load_fn, [chat_tab.view], chat_tab.load_outputs, api_visibility="undocumented"
            )
        demo.load(chat_tab.load_fn, [chat_tab.view], chat_tab.load_outputs, api_visibility="undocumented")
        demo.load(models_tab.page_fn, None, models_tab.page_outputs, api_visibility="undocumented")
    return demo
