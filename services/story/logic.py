"""What the Story and Adventure tabs do, as plain functions tests call without a browser.

Both tabs hold a `Story` (store/stories): chunks with their origin, retry versions and a
redo stack. A generation builds the prompt from the story's text and its steering
(memory, author's note, world info; engine/prompts/story.py), runs it through the shared
model queue, and when the run ends its callback saves the reply into the story, so a
closed tab or a dropped connection never loses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from engine.lore import entry_name
from engine.prompts import (
    ADVENTURE_STOPS,
    FittedPrompt,
    StoryPrompt,
    StorySteering,
    answer_of,
    part_tokens,
    story_parts,
    trim_reply,
)
from engine.run import Run
from engine.types import GenerationRequest
from presets.errors import HearthError, InputError
from presets.samplers import SamplerParams
from services.context import AppContext
from services.models.remote import estimate_note
from services.prompt_report import Outline, record, span_words
from store.stories import Mode, StoredStory, Story, StoryStore

Action = Literal["generate", "retry"]
NO_MODEL = "No model loaded."


@dataclass(frozen=True)
class StoryView:
    """Per-browser state of a Story or Adventure tab."""

    story_id: str | None = None
    anchor: int | None = None  # the first story line kept last time, so the KV prefix holds


@dataclass(frozen=True)
class PreparedStory:
    request: GenerationRequest
    prompt: StoryPrompt
    fitted: FittedPrompt


def stories(ctx: AppContext) -> StoryStore:
    return ctx.store.stories


def open_story(ctx: AppContext, mode: Mode, story_id: str | None = None) -> StoredStory:
    """The story `story_id` if it still exists, else the newest of this mode, else a new one."""
    if story_id:
        for summary in stories(ctx).list(mode):
            if summary.id == story_id:
                return stories(ctx).get(story_id)
    newest = stories(ctx).list(mode)
    if newest:
        return stories(ctx).get(newest[0].id)
    return stories(ctx).create(Story(mode=mode))


class StillWritingError(InputError):
    """An edit arrived while this window's model run is still adding to the story."""


def ensure_idle(ctx: AppContext, owner: str, what: str) -> None:
    """Raises StillWritingError while `owner`'s run is writing: an edit now would be
    overtaken (or doubled) by the reply being saved when the run ends."""
    if ctx.models.active_run(owner) is not None:
        raise StillWritingError(f"The model is still writing: wait for it, or press Stop, before you {what}.")


def current(ctx: AppContext, view: StoryView | None, mode: Mode) -> tuple[StoryView, StoredStory]:
    """The view's story (opening one if the view has none) and a view naming it.

    Raises:
        NotFoundError: the view's story is gone (deleted in another window, say).
            Falling back to another story here would write this window's edits into it.
    """
    if view is not None and view.story_id:
        return view, stories(ctx).get(view.story_id)
    return reopen(ctx, view, mode)


def reopen(
    ctx: AppContext, view: StoryView | None, mode: Mode, last_story_id: Any = None
) -> tuple[StoryView, StoredStory]:
    """Like `current`, but a story that is gone gives way to the newest one: for page loads.
    A page that shows no story yet opens the one this browser was last in
    (`last_story_id`, as the browser remembers it), if it is still there."""
    if view is None and isinstance(last_story_id, str) and last_story_id:
        view = StoryView(last_story_id)
    view = view or StoryView()
    stored = open_story(ctx, mode, view.story_id)
    if stored.id != view.story_id:
        view = StoryView(stored.id)
    return view, stored


def update(ctx: AppContext, view: StoryView, mode: Mode, change: Callable[[Story], Story]) -> StoredStory:
    """Apply `change` to the view's story and save it (only if it changed anything)."""
    return stories(ctx).update(_id(view), change)


def steering_of(story: Story) -> StorySteering:
    return StorySteering(
        memory=story.memory,
        authors_note=story.authors_note,
        authors_note_template=story.authors_note_template,
        authors_note_depth=story.authors_note_depth,
        authors_note_unit=story.authors_note_unit,
        world_info=story.world_info,
        wi_placement=story.wi_placement,
        wi_search_depth=story.wi_search_depth,
    )


def prepare(ctx: AppContext, story: Story, params: SamplerParams, *, anchor: int | None) -> PreparedStory:
    """The request that continues `story`'s text.

    Raises:
        NoModelLoadedError: no model is loaded.
        ContextOverflowError: memory, the note, world info and the newest line do not fit.
    """
    budget = ctx.models.backend.n_ctx - params.max_new_tokens
    prompt = story_parts(story.full_text(), steering_of(story), budget=budget, count=ctx.models.count_tokens)
    fitted = ctx.models.fit(prompt.parts, params, anchor=anchor)
    stops = ADVENTURE_STOPS if story.mode == "adventure" else ()
    return PreparedStory(GenerationRequest(fitted.text, params, stops), prompt, fitted)


def start(
    ctx: AppContext, view: StoryView, mode: Mode, params: SamplerParams, owner: str, action: Action
) -> tuple[StoryView, Run]:
    """Start continuing the story (`generate`) or rolling the last AI part again (`retry`).

    The reply is saved into the story when the run ends: appended, or as a new version
    of the part it retries (the old versions stay).
    """
    story = stories(ctx).get(_id(view)).story
    basis = replace(story, chunks=story.retry_context()) if action == "retry" else story
    prepared = prepare(ctx, basis, params, anchor=view.anchor)
    run = ctx.models.start(prepared.request, owner)
    outline = story_outline(prepared, mode)
    key = prompt_key(_id(view))

    def keep_prompt(finished: Run) -> None:
        record(ctx.prompts, finished, outline, key)

    run.on_done(keep_prompt)
    run.on_done(_saver(ctx, _id(view), mode, action))
    return replace(view, anchor=prepared.fitted.start), run


def prompt_key(story_id: str) -> str:
    """Where the prompt inspector finds the prompt of a story's latest run."""
    return f"story:{story_id}"


def story_outline(prepared: PreparedStory, mode: Mode) -> Outline:
    """How the inspector describes a story prompt: the lines in it, and what was left out."""
    fitted, prompt = prepared.fitted, prepared.prompt
    kept = range(fitted.start + 1, prompt.lines + 1)
    details = {"story": f"{len(kept)} of {prompt.lines} lines: {span_words(kept)}" if kept else ""}
    dropped = [f"the oldest {fitted.start} line{'s' if fitted.start != 1 else ''}"] if fitted.start else []
    names = "story card" if mode == "adventure" else "world info"
    dropped.extend(f"{names} “{entry_name(a.entry, a.index)}” (over the budget)" for a in prompt.scan.dropped)
    return Outline(fitted, mode, details, tuple(dropped))


def _saver(ctx: AppContext, story_id: str, mode: Mode, action: Action) -> Callable[[Run], None]:
    def save(finished: Run) -> None:
        if finished.error is not None:
            return
        text = reply_text(finished.text, mode)
        if not text:
            return
        stories(ctx).update(
            story_id, lambda story: story.retry(text) if action == "retry" else story.append(text, "ai")
        )

    return save


def reply_text(text: str, mode: Mode) -> str:
    """What of a run's text goes into the story: an adventure reply stops where the
    player's next action would begin, and trailing space is dropped in both modes. What a
    thinking model thought is never story text (`answer_of`; "" while it still thinks).

    Line breaks become "\n": the story is edited in a browser text box, which turns
    every "\r" into "\n", and a stored "\r" would then look like an edit by the writer.
    """
    text = answer_of(text).replace("\r\n", "\n").replace("\r", "\n")
    if mode == "adventure":
        return trim_reply(text)  # "" for a reply of only whitespace: a retry never blanks the part
    return text.rstrip()


def token_summary(
    ctx: AppContext, story: Story, params: SamplerParams, anchor: int | None
) -> tuple[str, int | None]:
    """One line saying what the next prompt holds, part by part, and the first story line
    it keeps (the anchor for the next turn, so the prompt's start stays put)."""
    if not ctx.models.loaded:
        return ctx.startup_error or NO_MODEL, anchor
    prepared = prepare(ctx, story, params, anchor=anchor)
    backend = ctx.models.backend
    counts = part_tokens(prepared.prompt, prepared.fitted, ctx.models.count_tokens, backend.count_tokens)
    n_ctx = ctx.models.backend.n_ctx
    estimate = estimate_note(ctx.models.backend)
    dropped = f" ({counts.lines_dropped} oldest lines left out)" if counts.lines_dropped else ""
    line = (
        f"Memory {counts.memory} · World info {counts.world_info} · Author's note {counts.authors_note} · "
        f"Story {counts.story} of {counts.story_total}{dropped} · "
        f"Prompt {counts.total} / {n_ctx} tokens{estimate}"
    )
    return line, prepared.fitted.start


def tokens_or_reason(ctx: AppContext, story: Story, anchor: int | None) -> tuple[str, int | None]:
    """`token_summary` at the default reply length, or why there are no counts: a count
    must never stop a story from showing."""
    try:
        return token_summary(ctx, story, SamplerParams(), anchor)
    except HearthError as exc:
        return f"Token counts unavailable: {exc}", anchor


def version_choices(story: Story) -> tuple[list[tuple[str, int]], int | None]:
    """The last part's versions (retries) as dropdown choices, and the one shown."""
    if not story.chunks or len(story.chunks[-1].versions) < 2:
        return [], None
    last = story.chunks[-1]
    choices = [
        (f"Version {i + 1} of {len(last.versions)}: {_preview(text)}", i)
        for i, text in enumerate(last.versions)
    ]
    return choices, last.selected


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 60 else flat[:59] + "…"


def _id(view: StoryView) -> str:
    if view.story_id is None:
        raise ValueError("the view names no story")  # a programming error: views come from `current`
    return view.story_id
