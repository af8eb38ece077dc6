"""The Story and Adventure tabs' logic on the fake backend: generate, retry, undo, redo,
Do/Say input, scenarios, and what the model is sent."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from engine.fake import FakeBackend
from engine.prompts.adventure import ADVENTURE_STOPS, InputKind
from engine.prompts.scenario import MissingAnswersError
from engine.run import Run
from presets.samplers import SamplerParams
from services.context import AppContext
from services.story import adventure as play
from services.story import logic
from services.story import steering as story_steering
from services.story.logic import StoryView
from store.errors import NotFoundError
from store.stories import Story, WorldInfoEntry

PARAMS = SamplerParams(max_new_tokens=32)


def finish(run: Run) -> None:
    run.wait(timeout=10)


def new_view(ctx: AppContext, story: Story) -> StoryView:
    return StoryView(logic.stories(ctx).create(story).id)


def text_of(ctx: AppContext, view: StoryView) -> str:
    return logic.stories(ctx).get(view.story_id or "").story.full_text()


def test_generate_appends_the_reply_and_sends_memory_note_and_lore(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    story = Story(
        memory="A gothic tale.",
        authors_note="dread",
        authors_note_depth=1,
        authors_note_unit="lines",
        world_info=(WorldInfoEntry(keys=("castle",), content="The castle is old."),),
    ).append("We came to the castle.\nThe gate was open.\n", "prompt")
    view = new_view(fake_ctx, story)
    fake_backend.enqueue(["It creaked", " in the wind.  "])
    view, run = logic.start(fake_ctx, view, "story", PARAMS, "me", "generate")
    finish(run)
    assert fake_backend.calls[-1].prompt == (
        "A gothic tale.\nThe castle is old.\nWe came to the castle.\n"
        "[Author's note: dread]\nThe gate was open.\n"
    )
    assert fake_backend.calls[-1].stop == ()
    stored = logic.stories(fake_ctx).get(view.story_id or "")
    assert stored.story.full_text().endswith("The gate was open.\nIt creaked in the wind.")
    assert [c.origin for c in stored.story.chunks] == ["prompt", "ai"]
    assert view.anchor == 0


def test_retry_keeps_the_old_version_and_undo_redo_step_through(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    view = new_view(fake_ctx, Story().append("Once upon a time", "prompt"))
    fake_backend.enqueue([" there was a fox."])
    finish(logic.start(fake_ctx, view, "story", PARAMS, "me", "generate")[1])
    fake_backend.enqueue([" there was a bear."])
    finish(logic.start(fake_ctx, view, "story", PARAMS, "me", "retry")[1])
    # The retry continued from the text before the reply it replaces.
    assert fake_backend.calls[-1].prompt == "Once upon a time"
    assert text_of(fake_ctx, view) == "Once upon a time there was a bear."
    story = logic.stories(fake_ctx).get(view.story_id or "").story
    choices, selected = logic.version_choices(story)
    assert [value for _label, value in choices] == [0, 1] and selected == 1
    logic.update(fake_ctx, view, "story", lambda s: s.undo())
    assert text_of(fake_ctx, view) == "Once upon a time there was a fox."
    logic.update(fake_ctx, view, "story", lambda s: s.undo())
    assert text_of(fake_ctx, view) == "Once upon a time"
    logic.update(fake_ctx, view, "story", lambda s: s.redo())
    assert text_of(fake_ctx, view) == "Once upon a time there was a fox."


def test_an_adventure_reply_stops_before_the_players_next_action(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    view = new_view(fake_ctx, Story(mode="adventure").append("You stand in a hall.", "prompt"))
    play.act(fake_ctx, view, InputKind.DO, "open the door")
    play.act(fake_ctx, view, InputKind.SAY, "hello")
    assert text_of(fake_ctx, view) == 'You stand in a hall.\n\n> You open the door.\n\n> You say "Hello."\n\n'
    fake_backend.enqueue(["A ghost waves.", "\n> You run"])
    finish(logic.start(fake_ctx, view, "adventure", PARAMS, "me", "generate")[1])
    assert fake_backend.calls[-1].stop == ADVENTURE_STOPS
    assert text_of(fake_ctx, view).endswith('> You say "Hello."\n\nA ghost waves.')


def test_an_empty_action_adds_nothing(fake_ctx: AppContext) -> None:
    view = new_view(fake_ctx, Story(mode="adventure").append("Start.", "prompt"))
    play.act(fake_ctx, view, InputKind.DO, "   ")
    assert text_of(fake_ctx, view) == "Start."


def test_a_scenario_asks_its_questions_and_fills_every_part(fake_ctx: AppContext) -> None:
    scenario = next(s for s in play.scenarios() if "${" in s.prompt)
    questions = scenario.questions()
    assert questions
    with pytest.raises(MissingAnswersError):
        play.begin(fake_ctx, scenario, {})
    stored = play.begin(fake_ctx, scenario, {q: "Ada" for q in questions})
    story = stored.story
    assert story.mode == "adventure" and story.title == scenario.title
    assert "${" not in story.full_text() + story.memory
    assert "Ada" in story.full_text() + story.memory
    assert len(story.world_info) == len(scenario.cards)


def test_a_written_scenario_asks_its_own_questions(fake_ctx: AppContext) -> None:
    scenario = play.scenario_by_id(play.CUSTOM, "You are ${your name}, a pirate.", "Pirates.")
    assert scenario.questions() == ("your name",)
    stored = play.begin(fake_ctx, scenario, {"your name": "Mary"})
    assert stored.story.full_text() == "You are Mary, a pirate."


def test_the_transcript_shows_actions_as_quotes_and_escapes_html() -> None:
    story = Story(mode="adventure").append("Hi <b>there</b>", "prompt").append("\n\n> You wave.\n\n", "user")
    shown = play.transcript(story)
    assert "&lt;b&gt;" in shown and "<b>" not in shown
    assert "<blockquote><p>You wave.</p></blockquote>" in shown
    many = Story(mode="adventure")
    for i in range(70):
        many = many.append(f"part {i}\n", "ai")
    assert "10 earlier parts" in play.transcript(many)
    assert "part 9<" not in play.transcript(many) and "part 69" in play.transcript(many)


def test_the_token_line_names_every_part(fake_ctx: AppContext) -> None:
    story = Story(memory="Memory here.", authors_note="note").append("Some story text.\n", "prompt")
    line, anchor = logic.token_summary(fake_ctx, story, PARAMS, None)
    for part in ("Memory", "World info", "Author's note", "Story", "Prompt"):
        assert part in line
    assert anchor == 0


def test_replies_keep_plain_line_breaks() -> None:
    assert logic.reply_text("one\r\ntwo\rthree  ", "story") == "one\ntwo\nthree"
    assert logic.reply_text("It opens.\r\n> You", "adventure") == "It opens."


def test_world_info_rows_keep_their_own_kobold_fields_when_one_is_deleted() -> None:
    kept = [
        WorldInfoEntry(keys=(f"key{i}",), content=f"Entry {i}.", group=f"folder{i}", extra={"uid": i})
        for i in range(3)
    ]
    story = Story(world_info=tuple(kept))
    widget_values = story_steering.values(story)
    rows = widget_values[5]
    widget_values[5] = [rows[0], rows[2]]  # the writer deletes the middle row
    after = story_steering.apply(story, widget_values).world_info
    assert [(e.content, e.group, e.extra) for e in after] == [
        ("Entry 0.", "folder0", {"uid": 0}),
        ("Entry 2.", "folder2", {"uid": 2}),
    ]
    shorter = replace(story, world_info=after)
    widget_values[5] = [rows[0], ["new", "", "", "A new card.", "", False, 100, True], rows[2]]
    after = story_steering.apply(shorter, widget_values).world_info
    assert [e.extra for e in after] == [{"uid": 0}, {}, {"uid": 2}]


def test_edits_wait_for_the_run_and_a_deleted_story_is_never_replaced(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    view = new_view(fake_ctx, Story().append("Once upon a time", "prompt"))
    fake_backend.delay = 0.05
    fake_backend.enqueue([" there", " was", " a", " fox."])
    _view, run = logic.start(fake_ctx, view, "story", PARAMS, "me", "generate")
    with pytest.raises(logic.StillWritingError, match="still writing"):
        logic.ensure_idle(fake_ctx, "me", "undo or redo")
    logic.ensure_idle(fake_ctx, "someone else", "undo or redo")  # other windows are free
    finish(run)
    logic.ensure_idle(fake_ctx, "me", "undo or redo")
    # Another window deletes the story: this one is told, and writes into no other story.
    other = new_view(fake_ctx, Story().append("A different tale", "prompt"))
    logic.stories(fake_ctx).delete(view.story_id or "")
    with pytest.raises(NotFoundError):
        logic.current(fake_ctx, view, "story")
    reopened, stored = logic.reopen(fake_ctx, view, "story")  # a page load moves on
    assert reopened.story_id == other.story_id and stored.story.full_text() == "A different tale"


def test_an_unrelated_edit_leaves_every_world_info_entry_as_imported() -> None:
    unused_secondary = WorldInfoEntry(
        keys=("castle",), secondary_keys=("night",), content="Dark.", selective=False
    )
    story = Story(world_info=(unused_secondary,))
    widget_values = story_steering.values(story)
    widget_values[0] = "New memory."  # the writer edits memory only
    after = story_steering.apply(story, widget_values)
    assert after.memory == "New memory." and after.world_info == story.world_info
    widget_values[5][0][1] = "night, storm"  # changing the secondary keys turns selection on
    assert story_steering.apply(story, widget_values).world_info[0].selective


def test_stop_keeps_the_partial_reply_as_the_models_part(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    view = new_view(fake_ctx, Story().append("The storm came", "prompt"))
    fake_backend.delay = 0.2
    fake_backend.enqueue([" at", " night", " and", " the", " boats", " came", " home", "."])
    _view, run = logic.start(fake_ctx, view, "story", PARAMS, "me", "generate")
    deadline = time.monotonic() + 10
    while not run.text and time.monotonic() < deadline:  # stop once some of the reply has arrived
        time.sleep(0.01)
    assert fake_ctx.models.stop("me")
    finish(run)
    story = logic.stories(fake_ctx).get(view.story_id or "").story
    assert [c.origin for c in story.chunks] == ["prompt", "ai"]
    assert story.chunks[1].text == run.text and run.text != " at night and the boats came home."


def test_editing_the_last_adventure_turn(fake_ctx: AppContext, fake_backend: FakeBackend) -> None:
    view = new_view(fake_ctx, Story(mode="adventure").append("You wake in a cave.\n", "prompt"))
    acted = play.act(fake_ctx, view, InputKind.DO, "look around").story.full_text()
    fake_backend.enqueue(["It is dark."])
    finish(logic.start(fake_ctx, view, "adventure", PARAMS, "me", "generate")[1])
    stored = play.edit_last_turn(fake_ctx, view, "It is dark, and water drips.")
    assert stored.story.full_text() == acted + "It is dark, and water drips."
    assert play.last_turn(stored.story) == "It is dark, and water drips."
    stored = play.edit_last_turn(fake_ctx, view, "")  # emptied: the reply is gone, the action stays
    assert stored.story.full_text() == acted and acted.rstrip().endswith("> You look around.")


def test_an_adventure_retry_of_only_whitespace_keeps_the_reply(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    view = new_view(fake_ctx, Story(mode="adventure").append("You wake in a cave.\n", "prompt"))
    play.act(fake_ctx, view, InputKind.DO, "look around")
    fake_backend.enqueue(["It is dark."])
    finish(logic.start(fake_ctx, view, "adventure", PARAMS, "me", "generate")[1])
    fake_backend.enqueue(["\n\n", "  "])  # the model writes nothing but blank lines
    finish(logic.start(fake_ctx, view, "adventure", PARAMS, "me", "retry")[1])
    story = logic.stories(fake_ctx).get(view.story_id or "").story
    assert story.chunks[-1].text == "It is dark." and story.chunks[-1].versions == ("It is dark.",)
    assert logic.reply_text(" \n\t", "adventure") == ""


def test_editing_the_last_turn_keeps_the_space_before_it(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    view = new_view(fake_ctx, Story(mode="adventure").append("You wake in a cave.", "prompt"))
    fake_backend.enqueue([" It is dark."])  # a Continue: the reply follows the sentence on its line
    finish(logic.start(fake_ctx, view, "adventure", PARAMS, "me", "generate")[1])
    # The edit box does not show the leading space, so the player types without it.
    stored = play.edit_last_turn(fake_ctx, view, "Water drips.")
    assert stored.story.full_text() == "You wake in a cave. Water drips."
    stored = play.edit_last_turn(fake_ctx, view, "\nA new paragraph.")  # typed whitespace is kept
    assert stored.story.full_text() == "You wake in a cave.\nA new paragraph."
    stored = play.edit_last_turn(fake_ctx, view, "Glued on.")  # after the "\n" it replaced
    assert stored.story.full_text() == "You wake in a cave.\nGlued on."
    assert play.joined("It is dark.", "", "Water drips.") == " Water drips."
    assert play.joined("The do", "", "or opens.") == "or opens."  # mid-word, as the model wrote it
    assert play.edit_last_turn(fake_ctx, view, "  ").story.full_text() == "You wake in a cave."


def test_a_row_added_to_the_world_info_table_is_enabled() -> None:
    # The table hands a new row's check boxes back blank, neither ticked nor unticked:
    # the entry is on (it was saved off, and never fired) until the writer unticks it.
    story = Story(mode="adventure")
    widget_values = story_steering.values(story)
    widget_values[5] = [["ghost", "", "", "A ghost haunts the mill.", "", "", "", ""]]
    story = story_steering.apply(story, widget_values)
    (entry,) = story.world_info
    assert (entry.keys, entry.enabled, entry.constant, entry.probability) == (("ghost",), True, False, 100)
    widget_values[5] = [["ghost", "", "", "A ghost haunts the mill.", "", "", "", False]]  # unticked
    assert not story_steering.apply(story, widget_values).world_info[0].enabled
