"""The whole page: a header and one tab per mode, all sharing one `AppContext`."""

from __future__ import annotations

import gradio as gr

from services import render
from services.context import AppContext
from ui import chat, keystrokes, live, models, script, story

TITLE = "Hearth"
TAB_IDS = {"chat", "story", "adventure", "models"}  # the top-level tabs a model load may switch to
# System fonts only: Hearth runs offline, so nothing may be fetched from a font CDN.
THEME = gr.themes.Soft(
    primary_hue="orange",
    neutral_hue="stone",
    font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"],
)
_CSS = """
#history button[aria-label="Clear"], #live-reply button[aria-label="Clear"] { display: none; }
#live-reply { margin-top: -12px; }
#context-status, #story-tokens, #adventure-tokens { text-align: right; opacity: 0.75; }
#adventure-transcript, #adventure-live { max-height: 60vh; overflow-y: auto; }
#adventure-transcript blockquote, #adventure-live blockquote {
  border-left: 4px solid var(--color-accent); margin: 0.6em 0; padding: 0.1em 0.8em;
  font-weight: 600; color: var(--body-text-color);
}
footer { display: none !important; }
#story-live { display: none !important; }
/* It carries the story box's marker, and a line while a thinking model thinks. */
#story-live:has(.hearth-status:not(:empty)) { display: block !important; font-style: italic; opacity: 0.8; }
"""
CSS = _CSS + script.CSS + render.code_css()
# The page's own scripts: theme switch, phone menu, chat actions; nothing typed is lost;
# replies stream in over their own channel.
HEAD = script.HEAD + keystrokes.HEAD + live.HEAD


def build(ctx: AppContext) -> gr.Blocks:
    """The whole app: a header and one tab per mode, all sharing `ctx`."""
    with gr.Blocks(title=TITLE) as demo:
        with gr.Row(equal_height=True, elem_id="header"):
            gr.Markdown("## Hearth", elem_id="title")
            theme = gr.Button("◐ Light / dark", size="sm", scale=0, min_width=120, elem_id="theme-toggle")
        theme.click(None, js="() => window.hearth.toggleTheme()")
        with gr.Tabs(elem_id="main-tabs") as tabs:
            with gr.Tab("Chat", id="chat"):
                chat_tab = chat.build(ctx, tabs)
            with gr.Tab("Story", id="story"):
                story_tab = story.build_story(ctx)
            with gr.Tab("Adventure", id="adventure"):
                adventure_tab = story.build_adventure(ctx)
            with gr.Tab("Models", id="models"):
                models_tab = models.build(ctx, tabs, TAB_IDS)
        for tab in (chat_tab, story_tab, adventure_tab):
            # A BrowserState reads the browser's storage when the page builds it, and the
            # page builds a tab only when it is first shown: a tab leaves its unrendered
            # (`render=False`), and they are built here, outside the tabs.
            for remembered in tab.remembers:
                remembered.render()
            inputs = [tab.state, *tab.remembers]
            # A newly loaded model changes what fits: each tab refreshes its counts.
            for loaded in models_tab.loaded:
                loaded.success(tab.load_fn, inputs, tab.outputs, api_visibility="undocumented")
            demo.load(tab.load_fn, inputs, tab.outputs, api_visibility="undocumented")
        demo.load(models_tab.page_fn, None, models_tab.page_outputs, api_visibility="undocumented")
    return demo
