"""The Chat tab's Prompt panel: the system prompt, the prompt format, where triggered
lorebook entries go, and what becomes of a thinking model's thinking
(`services.chat.thinking`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from services.chat import logic
from services.chat.characters import set_lore_placement
from services.chat.logic import AUTO_FORMAT, ChatSettings, ChatView
from services.chat.reply import context_status
from services.chat.thinking import set_thinking, thinking_settings
from services.context import AppContext
from store.records import Session
from ui.errors import shown_errors

THINKING = [
    ("Shown folded, left out of later prompts", "hide"),
    ("Kept in later prompts", "keep"),
    ("Off: ask the model not to think", "off"),
]
EFFORT = [("Model's default", ""), ("Low", "low"), ("Medium", "medium"), ("High", "high")]


@dataclass
class PromptWidgets:
    system: gr.Textbox
    format: gr.Dropdown
    lore_placement: gr.Radio
    thinking: gr.Radio
    think_budget: gr.Number
    effort: gr.Radio

    @property
    def outputs(self) -> list[Any]:
        """What a switch to another chat fills (`values`)."""
        return [self.system, self.format, self.lore_placement, self.thinking, self.think_budget, self.effort]


def layout(ctx: AppContext) -> PromptWidgets:
    with gr.Accordion("Prompt", open=False):
        system = gr.Textbox(label="System prompt", lines=3, elem_id="system-prompt")
        fmt = gr.Dropdown(
            label="Prompt format",
            choices=logic.format_choices(ctx),
            value=AUTO_FORMAT,
            allow_custom_value=True,
            elem_id="prompt-format",
        )
        lore_placement = gr.Radio(
            [
                ("With the character (as SillyTavern)", "character"),
                ("Near the latest messages (faster)", "recent"),
            ],
            value="character",
            label="Where triggered lorebook entries go",
            elem_id="lore-placement",
        )
        with gr.Row(equal_height=True):
            thinking = gr.Radio(
                THINKING, value="hide", label="A thinking model's thinking", scale=3, elem_id="thinking-mode"
            )
            think_budget = gr.Number(
                0,
                label="Thinking budget (tokens; 0: no limit)",
                precision=0,
                minimum=0,
                scale=1,
                elem_id="thinking-budget",
            )
        effort = gr.Radio(
            EFFORT,
            value="",
            label="Reasoning effort",
            info="For models whose chat template reads one (gpt-oss and others)",
            elem_id="reasoning-effort",
        )
    return PromptWidgets(system, fmt, lore_placement, thinking, think_budget, effort)


def values(ctx: AppContext, session: Session, settings: ChatSettings) -> tuple[Any, ...]:
    """The panel's values for `session` (`PromptWidgets.outputs`)."""
    thinking = thinking_settings(session)
    return (
        logic.system_prompt_shown(ctx, session),  # the default, when the chat has none
        gr.update(choices=logic.format_choices(ctx), value=settings.format_choice),
        session.extra.get("lore_placement", "character"),
        thinking.mode,
        thinking.budget,
        thinking.effort,
    )


def wire(p: PromptWidgets, view: gr.State, status: gr.Markdown, ctx: AppContext, **quiet: Any) -> None:
    """The settings that are the chat's own (the system prompt and format are saved with
    the sampler's, by the tab)."""

    @shown_errors
    def on_placement(chat: ChatView | None, placement: str) -> str:
        chat = logic.ensure_session(ctx, chat)
        set_lore_placement(ctx, chat.session_id, placement)
        return context_status(ctx, chat)

    @shown_errors
    def on_thinking(chat: ChatView | None, mode: str, budget: Any, effort: str) -> str:
        chat = logic.ensure_session(ctx, chat)
        set_thinking(ctx, chat.session_id, mode, budget, effort)
        return context_status(ctx, chat)

    p.lore_placement.input(on_placement, [view, p.lore_placement], [status], **quiet)
    for changed in (p.thinking.input, p.think_budget.submit, p.think_budget.blur, p.effort.input):
        changed(on_thinking, [view, p.thinking, p.think_budget, p.effort], [status], **quiet)
