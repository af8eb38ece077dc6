"""A chat's thinking settings, and what they change in a thinking model's prompt.

Each chat says what to do with what a thinking model thinks:

- "hide" (the default): shown folded above the answer, left out of later prompts, as
  the models' own templates do;
- "keep": sent back in later prompts too (for models trained to see their reasoning);
- "off": the model is asked not to think. The reply starts with an empty thinking
  block, which is how Qwen3's template switches thinking off (`enable_thinking=false`)
  and which the other `<think>` models follow as well.

and how many tokens it may think (`budget`, 0 for no limit; `engine.think_budget`).
A model thinks when its chat template, or the format's reply prefix, has the tags, or,
for a file without a template, when its name is one of a thinking family's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from engine.prompts import THINK_CLOSE, THINK_OPEN
from presets.formats import PromptFormat
from services.context import AppContext
from store.errors import InvalidInputError
from store.records import Session

ThinkingMode = Literal["hide", "keep", "off"]
MODES: tuple[ThinkingMode, ...] = ("hide", "keep", "off")
EMPTY_BLOCK = f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n"  # the reply's start when thinking is off
MOST_BUDGET = 100_000
# Names of model families that think in `<think>` blocks, for files without a template.
THINKING_FAMILIES = ("qwq", "deepseek-r1", "qwen3", "magistral", "glm-z1", "thinking", "reasoning")


@dataclass(frozen=True)
class ThinkingSettings:
    mode: ThinkingMode = "hide"
    budget: int = 0  # tokens; 0: no limit


def thinking_settings(session: Session) -> ThinkingSettings:
    """The chat's settings, as stored in `Session.extra` (anything odd reads as the default)."""
    mode = session.extra.get("thinking")
    budget = session.extra.get("thinking_budget")
    return ThinkingSettings(
        mode if mode in MODES else "hide",
        budget if isinstance(budget, int) and 0 < budget <= MOST_BUDGET else 0,
    )


def set_thinking(ctx: AppContext, session_id: str, mode: str, budget: Any) -> Session:
    """Store the chat's settings. Raises InvalidInputError for an unknown mode or budget."""
    if mode not in MODES:
        raise InvalidInputError("Thinking must be 'hide', 'keep' or 'off'.")
    try:
        tokens = int(budget or 0)
    except (TypeError, ValueError):
        tokens = -1
    if not 0 <= tokens <= MOST_BUDGET:
        raise InvalidInputError(
            f"The thinking budget is a number of tokens from 0 (no limit) to {MOST_BUDGET:,}."
        )
    session = ctx.store.sessions.get(session_id)
    extra = {**session.extra, "thinking": mode, "thinking_budget": tokens}
    return ctx.store.sessions.save(replace(session, extra=extra))


def model_thinks(ctx: AppContext, fmt: PromptFormat) -> bool:
    """Whether the loaded model writes thinking blocks: by its chat template, the
    format's reply prefix, or, for a file without a template, its name."""
    info = ctx.models.info if ctx.models.loaded else None
    template = info.chat_template if info is not None else ""
    if THINK_OPEN in template or THINK_CLOSE in template or THINK_OPEN in fmt.generation_prompt:
        return True
    name = f"{info.name} {Path(info.path).name}".lower() if info is not None and not template else ""
    return any(family in name for family in THINKING_FAMILIES)


def opens_thinking(fmt: PromptFormat) -> bool:
    """Whether the format's reply prefix opens the thinking block itself (DeepSeek-R1's)."""
    return fmt.generation_prompt.rstrip().endswith(THINK_OPEN)


def reply_format(fmt: PromptFormat, settings: ThinkingSettings, thinks: bool) -> PromptFormat:
    """`fmt`, its reply prefix holding an empty thinking block when thinking is off."""
    if settings.mode != "off" or not thinks:
        return fmt
    if opens_thinking(fmt):
        return replace(fmt, generation_prompt=fmt.generation_prompt.rstrip() + f"\n\n{THINK_CLOSE}\n\n")
    return replace(fmt, generation_prompt=fmt.generation_prompt + EMPTY_BLOCK)
