"""Stories on disk: create, list, save, rename, duplicate, delete, and damage handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store.db import Store
from store.errors import NotFoundError, StoreError
from store.stories import Story


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


def test_a_story_survives_a_restart_with_every_field(tmp_path: Path, store: Store) -> None:
    story = (
        Story(title="The Lighthouse", memory="A storm.", authors_note="tense", authors_note_unit="lines")
        .append("It was night.", "prompt")
        .append(" The lamp went out.", "ai")
        .retry(" A ship appeared.")
    )
    stored = store.stories.create(story)
    store.close()
    again = Store(tmp_path / "data").stories.get(stored.id)
    assert again.story == story
    assert again.story.chunks[-1].earlier == (" The lamp went out.",)
    assert again.story.authors_note_unit == "lines"


def test_list_filters_by_mode_and_title_newest_first(store: Store) -> None:
    first = store.stories.create(Story(title="Moon base"))
    second = store.stories.create(Story(title="Dragon cave", mode="adventure"))
    third = store.stories.create(Story(title="Moon river"))
    store.stories.save(first.id, Story(title="Moon base", memory="changed"))
    assert [s.id for s in store.stories.list()] == [first.id, third.id, second.id]
    assert [s.id for s in store.stories.list("adventure")] == [second.id]
    assert [s.id for s in store.stories.list("story", query="RIVER")] == [third.id]


def test_untitled_stories_get_a_title_and_rename_checks_it(store: Store) -> None:
    stored = store.stories.create(Story(mode="adventure"))
    assert stored.story.title == "Untitled adventure"
    assert store.stories.rename(stored.id, "  A   new\nname ").story.title == "A new name"
    with pytest.raises(StoreError, match="cannot be empty"):
        store.stories.rename(stored.id, "   ")


def test_duplicate_copies_the_content_under_a_new_id(store: Store) -> None:
    stored = store.stories.create(Story(title="Original").append("Text", "prompt"))
    copy = store.stories.duplicate(stored.id)
    assert copy.id != stored.id
    assert copy.story.title == "Original (copy)"
    assert copy.story.full_text() == "Text"
    store.stories.save(copy.id, copy.story.append(" more", "user"))
    assert store.stories.get(stored.id).story.full_text() == "Text"


def test_delete_and_missing_stories(store: Store) -> None:
    stored = store.stories.create(Story(title="Gone soon"))
    store.stories.delete(stored.id)
    with pytest.raises(NotFoundError):
        store.stories.get(stored.id)
    with pytest.raises(NotFoundError):
        store.stories.delete(stored.id)
    with pytest.raises(StoreError):
        store.stories.get("../../etc/passwd")


def test_a_damaged_file_is_skipped_in_the_list_and_named_when_opened(store: Store) -> None:
    good = store.stories.create(Story(title="Fine"))
    bad = store.stories.create(Story(title="Broken"))
    path = store.stories.root / f"{bad.id}.json"
    doc = json.loads(path.read_text())
    doc["story"]["1"]["record"]["chunks"] = "not a list"
    path.write_text(json.dumps(doc))
    assert [s.id for s in store.stories.list()] == [good.id]
    with pytest.raises(StoreError, match="chunks"):
        store.stories.get(bad.id)


def test_a_failed_write_leaves_the_old_story(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = store.stories.create(Story(title="Safe").append("Original text", "prompt"))

    def full_disk(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("store.atomic.os.replace", full_disk)
    with pytest.raises((OSError, StoreError)):
        store.stories.save(stored.id, stored.story.append(" and more", "user"))
    monkeypatch.undo()
    assert store.stories.get(stored.id).story.full_text() == "Original text"
    leftovers = [p.name for p in store.stories.root.iterdir() if not p.name.endswith(".json")]
    assert leftovers == []


def test_stories_saved_before_the_depth_unit_existed_still_open(store: Store) -> None:
    stored = store.stories.create(Story(title="Old"))
    path = store.stories.root / f"{stored.id}.json"
    doc = json.loads(path.read_text())
    del doc["story"]["1"]["record"]["authors_note_unit"]
    path.write_text(json.dumps(doc))
    assert store.stories.get(stored.id).story.authors_note_unit == "characters"
