"""Stories and adventures on disk: one TinyDB file per story, written atomically.

Layout under the stories folder (ids are generated, never taken from input):

    <story id>.json    {"story": [{"id", "created", "updated", "record": StoryRecord}]}

A save rewrites that one file (temp file, fsync, rename), so a crash mid-write leaves
the previous version. The list reads each file once and remembers its summary until
the file changes.
"""

from __future__ import annotations

import builtins
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tinydb import Query

from store.atomic import open_db
from store.errors import InvalidInputError, NotFoundError, StoreCorruptError, StoreError
from store.filecache import FileCache
from store.records import check_id, new_id
from store.stories.codec import story_from_dict, story_to_dict
from store.stories.model import Mode, Story

MAX_TITLE_CHARS = 120
COPY_SUFFIX = " (copy)"
_TABLE = "story"
_ID_FILE = re.compile(r"[0-9a-f]{32}\.json")
_NOT_FOUND = "That story no longer exists."


@dataclass(frozen=True)
class StoredStory:
    """A story with the facts the store keeps about it."""

    id: str
    story: Story
    created: float
    updated: float


@dataclass(frozen=True)
class StorySummary:
    """What the list shows, without the story's text."""

    id: str
    title: str
    mode: Mode
    updated: float
    words: int


class StoryStore:
    """Create, list, save, rename, duplicate and delete stories."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._summaries: FileCache[StorySummary] = FileCache()

    def create(self, story: Story) -> StoredStory:
        """Save `story` as a new story (an untitled one is called "Untitled story")."""
        now = time.time()
        stored = StoredStory(new_id(), _titled(story), now, now)
        with self._lock:
            self._write(stored)
        return stored

    def get(self, story_id: str) -> StoredStory:
        """Raises NotFoundError if there is none, StoreCorruptError if it cannot be read."""
        path = self._path(story_id)
        if not path.is_file():
            raise NotFoundError(_NOT_FOUND)
        with open_db(path) as db:
            docs = db.table(_TABLE).all()
        if not docs:
            raise NotFoundError(_NOT_FOUND)
        doc = dict(docs[0])
        try:
            created, updated = float(doc["created"]), float(doc["updated"])
            return StoredStory(story_id, story_from_dict(doc["record"]), created, updated)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorruptError(f"The story file {path.name} is damaged ({exc}).") from exc

    def save(self, story_id: str, story: Story) -> StoredStory:
        """Replace a story's content; it must exist."""
        with self._lock:
            old = self.get(story_id)
            stored = replace(old, story=_titled(story), updated=time.time())
            self._write(stored)
        return stored

    def update(self, story_id: str, change: Callable[[Story], Story]) -> StoredStory:
        """Apply `change` to the stored story and save the result, as one step: a reply
        saved from the generation thread and an edit from the page cannot undo each other.
        Nothing is written when `change` returns the story unchanged."""
        with self._lock:
            old = self.get(story_id)
            changed = change(old.story)
            return old if changed == old.story else self.save(story_id, changed)

    def rename(self, story_id: str, title: str) -> StoredStory:
        title = " ".join(title.split())[:MAX_TITLE_CHARS]
        if not title:
            raise InvalidInputError("A story title cannot be empty.")
        with self._lock:
            return self.save(story_id, replace(self.get(story_id).story, title=title))

    def duplicate(self, story_id: str) -> StoredStory:
        """A new story with the same content, titled "<title> (copy)"."""
        story = self.get(story_id).story
        title = (story.title[: MAX_TITLE_CHARS - len(COPY_SUFFIX)] + COPY_SUFFIX).strip()
        return self.create(replace(story, title=title))

    def delete(self, story_id: str) -> None:
        with self._lock:
            path = self._path(story_id)
            if not path.is_file():
                raise NotFoundError(_NOT_FOUND)
            path.unlink()
            self._summaries.forget(story_id)

    def list(self, mode: Mode | None = None, query: str = "") -> builtins.list[StorySummary]:
        """Stories (of one mode, if given) whose title holds `query`, newest first.
        Damaged files are skipped, not fatal."""
        wanted = query.strip().lower()
        found = []
        for path in self.root.iterdir():
            if not _ID_FILE.fullmatch(path.name):
                continue
            summary = self._summary(path)
            if summary is None or (mode is not None and summary.mode != mode):
                continue
            if wanted and wanted not in summary.title.lower():
                continue
            found.append(summary)
        return sorted(found, key=lambda s: s.updated, reverse=True)

    def _summary(self, path: Path) -> StorySummary | None:
        """Cached until the file changes; None for a file that cannot be read."""
        story_id = path.name.removesuffix(".json")

        def build() -> StorySummary:
            stored = self.get(story_id)
            story = stored.story
            return StorySummary(
                story_id, story.title, story.mode, stored.updated, len(story.full_text().split())
            )

        try:
            return self._summaries.get(story_id, path, build)
        except (OSError, StoreError):
            return None

    def _write(self, stored: StoredStory) -> None:
        doc: dict[str, Any] = {
            "id": stored.id,
            "created": stored.created,
            "updated": stored.updated,
            "record": dict(story_to_dict(stored.story)),
        }
        with open_db(self._path(stored.id)) as db:
            # One upsert is one atomic write; truncate-then-insert would be two.
            db.table(_TABLE).upsert(doc, Query().id == stored.id)

    def _path(self, story_id: str) -> Path:
        return self.root / f"{check_id(story_id)}.json"


def _titled(story: Story) -> Story:
    title = " ".join(story.title.split())[:MAX_TITLE_CHARS]
    if not title:
        title = "Untitled adventure" if story.mode == "adventure" else "Untitled story"
    return replace(story, title=title)
