"""A chat's thinking settings, and what they change in a thinking model's prompt.

Each chat says what to do with what a thinking model thinks:

- "hide" (the default): shown folded above the answer, left out of later prompts, as
  the models' own templates do;
- "keep": sent back in later prompts too (for models trained to see their reasoning);
- "off": the model is asked not to think. The reply starts with an empty thinking
  block, which is how Qwen3's template switches thinking off (`enable_thinking=false`)
  and which the other `<think>` models follow as well.

and how many tokens it may think (`budget`, 0 for no limit; `engine.think_budget`), and
how hard (`effort`: "low", "medium" or "high", for templates that read a
`reasoning_effort`, such as gpt-oss's; "" leaves the template's default).

A template that reads the switches (`enable_thinking`, `reasoning_effort`) is given them:
a chat that changes one has its prompts rendered by the template in full
(`presets.template_format`), so the model sees exactly what its template writes.
A model thinks when its chat template, or the format's reply prefix, has the tags, or,
for a file without a template, when its name is one of a thinking family's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from catalog.detect import FormatDetection
from engine.prompts import THINK_CLOSE, THINK_OPEN
from presets.formats import PromptFormat
from presets.template_budget import REASONING_EFFORTS, TemplateOptions
from services.context import AppContext
from store.errors import InvalidInputError
from store.records import Session

ThinkingMode = Literal["hide", "keep", "off"]
MODES: tuple[ThinkingMode, ...] = ("hide", "keep", "off")
EFFORTS = ("", *REASONING_EFFORTS)  # "": the template's own default
EMPTY_BLOCK = f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n"  # the reply's start when thinking is off
MOST_BUDGET = 100_000
# Names of model families that think in `<think>` blocks, for files without a template.
THINKING_FAMILIES = ("qwq", "deepseek-r1", "qwen3", "magistral", "glm-z1", "thinking", "reasoning")


@dataclass(frozen=True)
class ThinkingSettings:
    mode: ThinkingMode = "hide"
    budget: int = 0  # tokens; 0: no limit
    effort: str = ""  # one of EFFORTS; "": the template's default


def thinking_settings(session: Session) -> ThinkingSettings:
    """The chat's settings, as stored in `Session.extra` (anything odd reads as the default)."""
    mode = session.extra.get("thinking")
    budget = session.extra.get("thinking_budget")
    effort = session.extra.get("reasoning_effort")
    return ThinkingSettings(
        mode if mode in MODES else "hide",
        budget if isinstance(budget, int) and 0 < budget <= MOST_BUDGET else 0,
        effort if effort in EFFORTS else "",
    )


def set_thinking(ctx: AppContext, session_id: str, mode: str, budget: Any, effort: str = "") -> Session:
    """Store the chat's settings. Raises InvalidInputError for an unknown mode, budget or effort."""
    if mode not in MODES:
        raise InvalidInputError("Thinking must be 'hide', 'keep' or 'off'.")
    if effort not in EFFORTS:
        raise InvalidInputError("Reasoning effort must be 'low', 'medium', 'high' or the model's default.")
    try:
        tokens = int(budget or 0)
    except (TypeError, ValueError):
        tokens = -1
    if not 0 <= tokens <= MOST_BUDGET:
        raise InvalidInputError(
            f"The thinking budget is a number of tokens from 0 (no limit) to {MOST_BUDGET:,}."
        )
    session = ctx.store.sessions.get(session_id)
    extra = {**session.extra, "thinking": mode, "thinking_budget": tokens, "reasoning_effort": effort}
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
    return prompt_opens_thinking(fmt.generation_prompt)


def prompt_opens_thinking(prompt: str) -> bool:
    """Whether a prompt ends inside an open thinking block, so the reply starts mid-thought."""
    return prompt.rstrip().endswith(THINK_OPEN)


def template_switches(settings: ThinkingSettings, thinks: bool) -> TemplateOptions:
    """The switches a template reads that the chat sets away from their defaults."""
    switches: list[tuple[str, bool | str]] = []
    if thinks and settings.mode == "off":
        switches.append(("enable_thinking", False))
    if settings.effort:
        switches.append(("reasoning_effort", settings.effort))
    return tuple(switches)


def chat_format(
    detection: FormatDetection, fmt: PromptFormat, settings: ThinkingSettings, thinks: bool
) -> PromptFormat:
    """The format a chat's prompt is assembled in: the marked one, rendered by the model's
    template in full, when the chat sets a switch that template reads; else `fmt` with
    an empty thinking block opening the reply when thinking is off (`reply_format`)."""
    switches = template_switches(settings, thinks)
    if not detection.reads_any(fmt, switches):
        return reply_format(fmt, settings, thinks)
    return detection.with_switches(fmt, switches)  # the template writes what the switches ask for


def reply_format(fmt: PromptFormat, settings: ThinkingSettings, thinks: bool) -> PromptFormat:
    """`fmt`, its reply prefix holding an empty thinking block when thinking is off."""
    if settings.mode != "off" or not thinks:
        return fmt
    if opens_thinking(fmt):
        return replace(fmt, generation_prompt=fmt.generation_prompt.rstrip() + f"\n\n{THINK_CLOSE}\n\n")
    return replace(fmt, generation_prompt=fmt.generation_prompt + EMPTY_BLOCK)
