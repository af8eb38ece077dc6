"""The Story and Adventure tabs' prompt inspector: the latest run's prompt, or the next.

A story keeps no per-reply record, so the latest run's prompt is kept in memory
(`AppContext.prompts`, under `logic.prompt_key`) until the app restarts or newer
prompts push it out; the next prompt is built and counted on request.
"""

from __future__ import annotations

from engine.errors import ContextOverflowError
from presets.samplers import SamplerParams
from services.context import AppContext
from services.prompt_report import NEXT, NEXT_LABEL, Inspection, KeptPrompt, inspection, measure
from services.story import logic
from services.story.logic import StoryView
from store.errors import StoreError
from store.stories import Mode

LATEST = "latest"


def inspect(
    ctx: AppContext, view: StoryView | None, mode: Mode, params: SamplerParams, choice: str | None = None
) -> Inspection:
    """The inspector for the latest run's prompt, or the next prompt (`NEXT`, built with
    `params`); by default the latest, else the next."""
    if view is None or not view.story_id:
        return inspection([], None, None, None)
    kept = ctx.prompts.get(logic.prompt_key(view.story_id))
    choices = [("Latest run", LATEST)] if kept is not None else []
    choices.append((NEXT_LABEL, NEXT))
    if kept is not None and choice != NEXT:
        return inspection(choices, LATEST, kept, kept.report)
    upcoming = next_prompt(ctx, view, mode, params)
    return inspection(choices, NEXT, upcoming, upcoming.report if upcoming else None)


def next_prompt(ctx: AppContext, view: StoryView, mode: Mode, params: SamplerParams) -> KeptPrompt | None:
    """The prompt the next Generate would send, counted; None when it cannot be built."""
    if not ctx.models.loaded or view.story_id is None:
        return None
    try:
        story = logic.stories(ctx).get(view.story_id).story
        prepared = logic.prepare(ctx, story, params, anchor=view.anchor)
    except (StoreError, ContextOverflowError):
        return None
    backend = ctx.models.backend
    report = measure(
        logic.story_outline(prepared, mode),
        backend.count_tokens,
        bos=backend.adds_bos,
        estimate=backend.token_count_is_estimate,
    )
    return KeptPrompt(prepared.fitted.text, report)
