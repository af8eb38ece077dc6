"""Adventure play as plain functions: scenarios, the player's Do/Say/Story input, the
transcript. Generation itself is shared with the Story tab (services/story/logic.py)."""

from __future__ import annotations

from dataclasses import asdict

from engine.prompts import (
    InputKind,
    Scenario,
    ScenarioStart,
    load_builtin_scenarios,
    parse_scenario,
    player_input,
)
from services.context import AppContext
from services.render import inert_html
from services.story import logic
from services.story.logic import StoryView
from store.stories import Chunk, Mode, StoredStory, Story, WorldInfoEntry

MODE: Mode = "adventure"
CUSTOM = "custom"
TRANSCRIPT_WINDOW = 60
"""Story parts the transcript shows; older ones stay in the story (and the prompt)."""


def scenarios() -> list[Scenario]:
    """The built-in adventure scenarios, by title."""
    return [s for s in load_builtin_scenarios() if s.mode == MODE]


def scenario_by_id(scenario_id: str, custom_prompt: str = "", custom_memory: str = "") -> Scenario:
    """A built-in scenario, or the player's own (its prompt and memory may hold
    ${placeholders} too).

    Raises:
        ScenarioFormatError: the player's own scenario has no prompt, or a bad placeholder.
        KeyError: there is no built-in scenario with that id (a programming error).
    """
    if scenario_id == CUSTOM:
        data = {
            "schema_version": 1,
            "title": "My adventure",
            "prompt": custom_prompt,
            "memory": custom_memory,
        }
        return parse_scenario(data, "your scenario")
    return {s.id: s for s in scenarios()}[scenario_id]


def story_from_start(start: ScenarioStart) -> Story:
    """A new adventure from a scenario with its answers filled in."""
    return Story(
        chunks=(Chunk(start.prompt, "prompt"),) if start.prompt else (),
        memory=start.memory,
        authors_note=start.authors_note,
        world_info=tuple(WorldInfoEntry(**asdict(card)) for card in start.cards),
        title=start.title,
        mode=MODE,
    )


def begin(ctx: AppContext, scenario: Scenario, answers: dict[str, str]) -> StoredStory:
    """Start and save a new adventure.

    Raises:
        MissingAnswersError: a question has no answer.
    """
    return logic.stories(ctx).create(story_from_start(scenario.start(answers)))


def act(ctx: AppContext, view: StoryView, kind: InputKind, raw: str) -> StoredStory:
    """Add the player's input to the story. An empty input adds nothing: it is a Continue."""
    if not raw.strip():
        return logic.stories(ctx).get(view.story_id or "")

    def add(story: Story) -> Story:
        typed = player_input(kind, raw, preceding=story.full_text())
        return story.append(typed.text, "user")

    return logic.update(ctx, view, MODE, add)


def transcript(story: Story, window: int = TRANSCRIPT_WINDOW) -> str:
    """The newest parts as inert HTML (services.render): the player's `> You …` lines
    become quotes, so actions stand apart from the narration."""
    shown = story.chunks[-window:]
    earlier = len(story.chunks) - len(shown)
    text = "".join(chunk.text for chunk in shown).strip("\n")
    note = f"*({earlier} earlier parts are in the story and its exports.)*\n\n" if earlier else ""
    return inert_html(note + text if text else "*The adventure has not started yet.*")


def edit_last_turn(ctx: AppContext, view: StoryView, text: str) -> StoredStory:
    """Replace the newest part's text (emptying it, or leaving only spaces, removes the
    part; the opening stays).

    The space that set the part off from the text before it stays, though the edit box
    hides it: an edit never glues two sentences together.
    """

    def edit(story: Story) -> Story:
        if not story.chunks:
            return story
        before = "".join(chunk.text for chunk in story.chunks[:-1])
        return story.edit(len(story.chunks) - 1, joined(before, story.chunks[-1].text, text))

    return logic.update(ctx, view, MODE, edit)


def joined(before: str, old: str, new: str) -> str:
    """`new`, replacing `old` after `before`, with the whitespace that separated `old`
    from `before` (or one space after a sentence end that `new` would touch). Only
    whitespace is "": the part is emptied."""
    if not new.strip():
        return ""
    if new[0].isspace() or not before or before[-1].isspace():
        return new
    lead = old[: len(old) - len(old.lstrip())]
    if lead:
        return lead + new
    ends_sentence = before.rstrip("\"”’')]")[-1:] in (".", "!", "?", "…", ",", ";", ":")
    return (" " if ends_sentence and (new[0].isalnum() or new[0] in '"“‘(') else "") + new


def last_turn(story: Story) -> str:
    """The text of the newest part, for the edit box."""
    return story.chunks[-1].text if story.chunks else ""
