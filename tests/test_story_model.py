"""The story model: append, retry, undo, redo, edit, and its stored record."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from store.errors import SchemaTooNewError, StoreCorruptError
from store.stories import (
    MAX_VERSIONS,
    Chunk,
    DepthUnit,
    Story,
    WorldInfoEntry,
    story_from_dict,
    story_to_dict,
)


def texts(story: Story) -> list[str]:
    return [c.text for c in story.chunks]


def origins(story: Story) -> list[str]:
    return [c.origin for c in story.chunks]


@pytest.fixture
def started() -> Story:
    """Prompt, the writer's input, and an AI reply."""
    return Story().append("Once", "prompt").append(" upon", "user").append(" a time", "ai")


# ----- append -----


def test_append_adds_chunks_in_order_with_their_origin(started: Story) -> None:
    assert texts(started) == ["Once", " upon", " a time"]
    assert origins(started) == ["prompt", "user", "ai"]
    assert started.full_text() == "Once upon a time"
    assert started.prompt == "Once"


def test_append_returns_a_new_story_and_leaves_the_old_one() -> None:
    empty = Story()
    grown = empty.append("Hi", "prompt")
    assert empty.chunks == () and texts(grown) == ["Hi"]


def test_append_of_nothing_changes_nothing(started: Story) -> None:
    undone = started.undo().undo()
    assert undone.append("", "user") is undone  # a Continue keeps the redo stack too


def test_append_clears_the_redo_stack(started: Story) -> None:
    undone = started.undo()
    assert undone.can_redo
    branched = undone.append(" long ago", "user")
    assert branched.redo_stack == () and not branched.can_redo
    assert branched.redo() is branched


def test_append_refuses_an_unknown_origin() -> None:
    with pytest.raises(ValueError):
        Story().append("x", "robot")  # type: ignore[arg-type]


# ----- retry -----


def test_retry_replaces_the_last_ai_chunk_and_keeps_the_user_input(started: Story) -> None:
    retried = started.retry(" in a land")
    assert texts(retried) == ["Once", " upon", " in a land"]
    assert origins(retried) == ["prompt", "user", "ai"]
    last = retried.chunks[-1]
    assert last.alternatives == (" a time",)
    assert last.versions == (" a time", " in a land") and last.selected == 1


def test_retry_context_is_everything_before_the_reply_being_replaced(started: Story) -> None:
    assert texts(Story(chunks=started.retry_context())) == ["Once", " upon"]
    assert started.retry_index() == 2


def test_repeated_retries_stack_every_version_in_order(started: Story) -> None:
    story = started.retry(" B").retry(" C")
    assert story.chunks[-1].versions == (" a time", " B", " C")
    assert len(story.chunks) == 3


def test_retry_keeps_at_most_max_versions_dropping_the_oldest(started: Story) -> None:
    story = started
    for i in range(MAX_VERSIONS + 3):
        story = story.retry(f" v{i}")
    versions = story.chunks[-1].versions
    assert len(versions) == MAX_VERSIONS
    assert versions[-1] == f" v{MAX_VERSIONS + 2}" and " a time" not in versions


def test_retry_after_a_user_chunk_appends_instead_of_replacing() -> None:
    story = Story().append("Prompt", "prompt").append(" my words", "user")
    assert story.retry_index() is None
    retried = story.retry(" reply")
    assert texts(retried) == ["Prompt", " my words", " reply"]
    assert origins(retried)[-1] == "ai"


def test_retry_never_replaces_an_edited_reply(started: Story) -> None:
    edited = started.edit(2, " a tweaked time")
    assert texts(edited.retry(" new")) == ["Once", " upon", " a tweaked time", " new"]


def test_retry_with_an_empty_reply_changes_nothing(started: Story) -> None:
    assert started.retry("") is started


def test_retry_clears_the_redo_stack(started: Story) -> None:
    story = started.append(" more", "user").append(" reply", "ai").undo().undo()
    assert story.redo_stack
    assert story.retry(" other").redo_stack == ()


def test_retry_after_stepping_back_keeps_the_undone_versions(started: Story) -> None:
    story = started.retry(" B").undo()  # showing " a time", " B" is a later version
    story = story.retry(" C")
    assert story.chunks[-1].versions == (" a time", " B", " C")
    assert story.chunks[-1].text == " C"


# ----- undo / redo -----


def test_undo_without_retries_pops_the_last_chunk_onto_the_redo_stack(started: Story) -> None:
    once = started.undo()
    assert texts(once) == ["Once", " upon"]
    assert [c.text for c in once.redo_stack] == [" a time"]
    twice = once.undo()
    assert texts(twice) == ["Once"]
    assert [c.text for c in twice.redo_stack] == [" a time", " upon"]


def test_redo_restores_popped_chunks_in_reverse_order(started: Story) -> None:
    story = started.undo().undo().undo()
    assert story.chunks == () and not story.can_undo
    assert story.redo().full_text() == "Once"
    assert story.redo().redo().redo() == started


def test_undo_with_a_retry_stack_swaps_back_to_the_previous_version(started: Story) -> None:
    story = started.retry(" B").retry(" C")
    back = story.undo()
    assert texts(back) == ["Once", " upon", " B"] and back.redo_stack == ()
    back = back.undo()
    assert texts(back) == ["Once", " upon", " a time"]
    popped = back.undo()  # no earlier version left: the chunk itself goes
    assert texts(popped) == ["Once", " upon"]


def test_redo_steps_forward_through_undone_versions(started: Story) -> None:
    story = started.retry(" B").retry(" C")
    bottom = story.undo().undo().undo()
    assert texts(bottom) == ["Once", " upon"]
    assert texts(bottom.redo()) == ["Once", " upon", " a time"]
    assert texts(bottom.redo().redo()) == ["Once", " upon", " B"]
    assert bottom.redo().redo().redo() == story
    assert bottom.redo().redo().redo().redo() == story  # nothing left to redo


def test_undo_steps_back_through_everything_added_in_reverse(started: Story) -> None:
    story = started.retry(" B").append(" then", "user").append(" end", "ai").retry(" fin")
    seen = []
    while story.can_undo:
        story = story.undo()
        seen.append(story.full_text())
    assert seen == [
        "Once upon B then end",
        "Once upon B then",
        "Once upon B",
        "Once upon a time",
        "Once upon",
        "Once",
        "",
    ]


def test_undo_and_redo_on_an_empty_story_do_nothing() -> None:
    empty = Story()
    assert empty.undo() is empty and empty.redo() is empty
    assert not empty.can_undo and not empty.can_redo


def test_select_version_picks_any_retry(started: Story) -> None:
    story = started.retry(" B").retry(" C").select_version(2, 0)
    assert story.chunks[2].text == " a time"
    assert story.chunks[2].versions == (" a time", " B", " C")
    with pytest.raises(IndexError):
        story.select_version(2, 3)


# ----- edit -----


def test_edit_changes_one_chunk_and_marks_it_edited(started: Story) -> None:
    edited = started.edit(1, " upon (edited)")
    assert texts(edited) == ["Once", " upon (edited)", " a time"]
    assert origins(edited) == ["prompt", "edit", "ai"]


def test_editing_the_prompt_keeps_it_the_prompt(started: Story) -> None:
    assert origins(started.edit(0, "Twice"))[0] == "prompt"
    assert texts(started.edit(0, "")) == ["", " upon", " a time"]


def test_editing_a_chunk_to_nothing_removes_it(started: Story) -> None:
    assert texts(started.edit(1, "")) == ["Once", " a time"]


def test_edit_keeps_versions_and_the_redo_stack(started: Story) -> None:
    story = started.retry(" B").append(" x", "user").undo()
    edited = story.edit(2, " B!")
    assert edited.chunks[2].alternatives == (" a time",)
    assert edited.redo_stack == story.redo_stack
    assert edited.redo().full_text() == "Once upon B! x"


def test_edit_with_the_same_text_changes_nothing_and_bad_index_raises(started: Story) -> None:
    assert started.edit(1, " upon") is started
    with pytest.raises(IndexError):
        started.edit(3, "x")


def test_edit_text_inside_one_chunk_edits_only_that_chunk(started: Story) -> None:
    edited = started.edit_text("Once upon a tiny time")
    assert texts(edited) == ["Once", " upon", " a tiny time"]
    assert origins(edited) == ["prompt", "user", "edit"]


def test_edit_text_added_at_the_end_becomes_a_user_chunk(started: Story) -> None:
    edited = started.edit_text("Once upon a time, there")
    assert texts(edited) == ["Once", " upon", " a time", ", there"]
    assert origins(edited)[-1] == "user"
    # Saved again while the writer types on: still one passage, one step for Undo.
    typed_on = edited.edit_text("Once upon a time, there was")
    assert texts(typed_on) == ["Once", " upon", " a time", ", there was"]
    assert texts(typed_on.undo()) == ["Once", " upon", " a time"]


def test_edit_text_across_chunks_merges_just_those(started: Story) -> None:
    story = started.append(" there", "user")
    edited = story.edit_text("Once upOn A time there")
    assert texts(edited) == ["Once", " upOn A time", " there"]
    assert origins(edited) == ["prompt", "edit", "user"]


def test_edit_text_deleting_whole_chunks_removes_them(started: Story) -> None:
    story = started.append(" there", "user")
    assert texts(story.edit_text("Once there")) == ["Once", " there"]


def test_edit_text_insertion_at_a_boundary_joins_the_earlier_chunk(started: Story) -> None:
    assert texts(started.edit_text("Once, upon a time")) == ["Once,", " upon", " a time"]
    assert texts(started.edit_text("So, Once upon a time")) == ["So, Once", " upon", " a time"]


def test_edit_text_on_an_empty_story_starts_the_prompt() -> None:
    story = Story().edit_text("Hello")
    assert texts(story) == ["Hello"] and origins(story) == ["prompt"]
    assert Story().edit_text("") == Story()


# ----- record -----


def test_to_dict_from_dict_round_trips_everything(started: Story) -> None:
    story = replace(
        started.retry(" B").undo().append(" x", "user").undo(),
        memory="mem",
        authors_note="note",
        authors_note_template="[Note: <|>]",
        authors_note_depth=160,
        world_info=(WorldInfoEntry(keys=("a", "b"), content="A.", probability=40, extra={"folder": None}),),
        wi_placement="before_authors_note",
        wi_search_depth=1024,
        title="T",
        mode="adventure",
        kobold_shape="united",
        extra={"savedsettings": {"opmode": 2}},
    )
    record = story_to_dict(story)
    assert record["schema"] == 1
    again = story_from_dict(json.loads(json.dumps(record)))
    assert again == story


def test_from_dict_refuses_a_newer_schema_and_damaged_records(started: Story) -> None:
    record = dict(story_to_dict(started))
    with pytest.raises(SchemaTooNewError):
        story_from_dict({**record, "schema": 99})
    with pytest.raises(StoreCorruptError, match="mode"):
        story_from_dict({**record, "mode": "chat"})
    with pytest.raises(StoreCorruptError, match="chunks"):
        story_from_dict({**record, "chunks": "nope"})
    with pytest.raises(StoreCorruptError, match="text"):
        story_from_dict(
            {**record, "chunks": [{"text": 1, "origin": "ai", "earlier": [], "later": [], "extra": {}}]}
        )
    with pytest.raises(StoreCorruptError, match="authors_note_depth"):
        story_from_dict({**record, "authors_note_depth": True})


def test_story_rejects_impossible_values() -> None:
    with pytest.raises(ValueError):
        Story(mode="chat")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Story(chunks=(Chunk("x", "bot"),))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Story(wi_search_depth=-1)


@pytest.mark.parametrize(("unit", "chars"), [("characters", 320), ("lines", 320 * 80), ("tokens", 320 * 4)])
def test_kobold_files_get_the_note_depth_in_characters(unit: DepthUnit, chars: int) -> None:
    assert Story(authors_note_depth=320, authors_note_unit=unit).authors_note_depth_chars == chars
