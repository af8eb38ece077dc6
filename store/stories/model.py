"""A story as Hearth holds it: ordered chunks with their retry versions, plus its context.

Chunk 0 is the prompt; every later chunk is one addition (the writer's input, an AI
reply, or an edit). The operations follow Kobold Lite's buttons:

- `append(text, origin)` pushes a chunk and clears the redo stack (a new timeline).
- `retry(text)` gives the last AI chunk a new version; the old one stays as an alternative.
- `undo()` steps back through what was added: a chunk with earlier versions swaps back to
  the previous version, otherwise the last chunk moves onto the redo stack.
- `redo()` is the mirror: it brings back a chunk from the redo stack, or, when that is
  empty, steps the last chunk forward to the version undo left.
- `edit(index, text)` / `edit_text(full_text)` change text in place and keep history.

A `Story` is an immutable value: every operation returns a new one, so a UI can keep the
old value for comparison and nothing is changed behind its back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Origin = Literal["prompt", "user", "ai", "edit"]
Mode = Literal["story", "adventure"]
WIPlacement = Literal["after_memory", "before_authors_note"]
KoboldShape = Literal["lite", "united"]
DepthUnit = Literal["characters", "lines", "tokens"]

ORIGINS: tuple[Origin, ...] = ("prompt", "user", "ai", "edit")
MODES: tuple[Mode, ...] = ("story", "adventure")
WI_PLACEMENTS: tuple[WIPlacement, ...] = ("after_memory", "before_authors_note")
KOBOLD_SHAPES: tuple[KoboldShape, ...] = ("lite", "united")
DEPTH_UNITS: tuple[DepthUnit, ...] = ("characters", "lines", "tokens")

DEFAULT_AN_TEMPLATE = "[Author's note: <|>]"
DEFAULT_AN_DEPTH = 320
"""Characters from the end of the story where the author's note goes (Lite's "Medium")."""
CHARS_PER_LINE = 80
"""How a depth in lines is written to Kobold files, which only know characters."""
CHARS_PER_TOKEN = 4
"""How a depth in tokens is written to Kobold files (English text averages about 4)."""
MAX_VERSIONS = 10
"""Versions one chunk keeps (Lite keeps 4: the current one and 3 retries). Oldest go first."""


@dataclass(frozen=True)
class WorldInfoEntry:
    """One world-info entry of a story, in Kobold Lite's terms.

    The field names match `engine.lore.worldinfo.StoryCard`, so a scenario's cards convert with
    `WorldInfoEntry(**dataclasses.asdict(card))` and these entries can be scanned by
    `engine.lore.worldinfo.activate` as they are. `extra` keeps the imported entry's own keys
    (`folder`, United's `uid`/`title`/`type`…) so an export writes them back.
    """

    keys: tuple[str, ...] = ()
    secondary_keys: tuple[str, ...] = ()
    anti_keys: tuple[str, ...] = ()
    content: str = ""
    comment: str = ""
    selective: bool = False
    constant: bool = False
    probability: int = 100
    enabled: bool = True
    group: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """One piece of the story and its versions.

    `earlier` holds older versions (oldest first) that undo steps back into; `later` holds
    versions that undo stepped away from (nearest first) and redo steps forward into.
    `extra` keeps the per-action data of an imported save (KoboldAI's `actions_metadata`
    entry, or a United action without its text).
    """

    text: str
    origin: Origin
    earlier: tuple[str, ...] = ()
    later: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version, in the order they were written; `text` is at `selected`."""
        return self.earlier + (self.text,) + self.later

    @property
    def selected(self) -> int:
        return len(self.earlier)

    @property
    def alternatives(self) -> tuple[str, ...]:
        """Every version except the current one, in the order they were written."""
        return self.earlier + self.later

    def select(self, version: int) -> Chunk:
        """The same chunk showing `versions[version]`."""
        versions = self.versions
        if not 0 <= version < len(versions):
            raise IndexError(f"chunk has {len(versions)} versions, not {version + 1}")
        return replace(
            self, earlier=versions[:version], text=versions[version], later=versions[version + 1 :]
        )

    def with_new_version(self, text: str) -> Chunk:
        """A retry: `text` becomes the newest version and is shown; all others stay."""
        return replace(self, earlier=self.versions[-(MAX_VERSIONS - 1) :], text=text, later=())


@dataclass(frozen=True)
class Story:
    """A co-written story or an adventure. See the module docstring for the operations."""

    chunks: tuple[Chunk, ...] = ()
    memory: str = ""
    authors_note: str = ""
    authors_note_template: str = DEFAULT_AN_TEMPLATE
    authors_note_depth: int = DEFAULT_AN_DEPTH
    authors_note_unit: DepthUnit = "characters"  # Kobold counts characters; AI Dungeon, lines
    world_info: tuple[WorldInfoEntry, ...] = ()
    wi_placement: WIPlacement = "after_memory"
    wi_search_depth: int = 0  # characters from the end that world info scans; 0 = all
    title: str = ""
    mode: Mode = "story"
    redo_stack: tuple[Chunk, ...] = ()  # chunks undo removed; the last one comes back first
    kobold_shape: KoboldShape = "lite"  # the save shape `export_story` writes by default
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys of an imported save

    def __post_init__(self) -> None:
        # Programming errors, not user errors: stored data is validated by `story_from_dict`.
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.wi_placement not in WI_PLACEMENTS:
            raise ValueError(f"unknown world-info placement {self.wi_placement!r}")
        if self.authors_note_unit not in DEPTH_UNITS:
            raise ValueError(f"unknown author's note depth unit {self.authors_note_unit!r}")
        if self.kobold_shape not in KOBOLD_SHAPES:
            raise ValueError(f"unknown Kobold save shape {self.kobold_shape!r}")
        if self.authors_note_depth < 0 or self.wi_search_depth < 0:
            raise ValueError("depths cannot be negative")
        if any(c.origin not in ORIGINS for c in self.chunks + self.redo_stack):
            raise ValueError("unknown chunk origin")

    # ----- reading -----

    def full_text(self) -> str:
        """The whole story as one text: every chunk's current version, in order."""
        return "".join(chunk.text for chunk in self.chunks)

    @property
    def prompt(self) -> str:
        return self.chunks[0].text if self.chunks else ""

    @property
    def authors_note_depth_chars(self) -> int:
        """The author's note depth in characters, as Kobold files store it."""
        if self.authors_note_unit == "lines":
            return self.authors_note_depth * CHARS_PER_LINE
        if self.authors_note_unit == "tokens":
            return self.authors_note_depth * CHARS_PER_TOKEN
        return self.authors_note_depth

    @property
    def can_undo(self) -> bool:
        return bool(self.chunks)

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_stack) or bool(self.chunks and self.chunks[-1].later)

    def retry_index(self) -> int | None:
        """The chunk `retry` replaces: the last one if the AI wrote it, else None (append)."""
        if self.chunks and self.chunks[-1].origin == "ai":
            return len(self.chunks) - 1
        return None

    def retry_context(self) -> tuple[Chunk, ...]:
        """The chunks a retried reply continues from (all but the reply being replaced)."""
        index = self.retry_index()
        return self.chunks if index is None else self.chunks[:index]

    # ----- operations -----

    def append(self, text: str, origin: Origin = "user") -> Story:
        """Add a chunk at the end and clear the redo stack. Empty text changes nothing
        (a Continue sends no input)."""
        if origin not in ORIGINS:
            raise ValueError(f"unknown chunk origin {origin!r}")
        if not text:
            return self
        return replace(self, chunks=self.chunks + (Chunk(text, origin),), redo_stack=())

    def retry(self, text: str) -> Story:
        """Replace the last AI chunk's text with `text`, keeping the old text as a version.

        Only an AI chunk is ever replaced: when the last chunk is the writer's (their input
        got an empty reply, or they edited the reply), the new reply is appended after it,
        so a retry never loses what the writer typed. An empty `text` (the model wrote
        nothing) changes nothing. The redo stack is cleared: this is a new timeline.
        """
        if not text:
            return self
        index = self.retry_index()
        if index is None:
            return self.append(text, "ai")
        chunks = self.chunks[:index] + (self.chunks[index].with_new_version(text),)
        return replace(self, chunks=chunks, redo_stack=())

    def undo(self) -> Story:
        """Step back once: to the last chunk's previous version if it has one, else remove
        the last chunk onto the redo stack. Does nothing on an empty story."""
        if not self.chunks:
            return self
        last = self.chunks[-1]
        if last.earlier:
            return replace(self, chunks=self.chunks[:-1] + (last.select(last.selected - 1),))
        return replace(self, chunks=self.chunks[:-1], redo_stack=self.redo_stack + (last,))

    def redo(self) -> Story:
        """Undo the last undo: bring back the last removed chunk, or, when none is waiting,
        step the last chunk forward to its next version. Does nothing if neither exists."""
        if self.redo_stack:
            return replace(self, chunks=self.chunks + (self.redo_stack[-1],), redo_stack=self.redo_stack[:-1])
        if self.chunks and self.chunks[-1].later:
            last = self.chunks[-1]
            return replace(self, chunks=self.chunks[:-1] + (last.select(last.selected + 1),))
        return self

    def select_version(self, index: int, version: int) -> Story:
        """Show another version of chunk `index` (the writer picks from the retry stack)."""
        chunks = list(self.chunks)
        chunks[index] = chunks[index].select(version)
        return replace(self, chunks=tuple(chunks))

    def edit(self, index: int, text: str) -> Story:
        """Replace chunk `index`'s text; every other chunk stays as it is.

        The chunk's origin becomes "edit" (chunk 0 stays "prompt") and its other versions
        are kept. Editing a chunk to "" removes it, except chunk 0, which stays as an empty
        prompt. The redo stack is kept: it holds whole chunks that follow the story's end,
        and an edit does not change what they follow. Undo does not revert an edit.
        """
        if not 0 <= index < len(self.chunks):
            raise IndexError(f"the story has {len(self.chunks)} chunks, not {index + 1}")
        chunk = self.chunks[index]
        if text == chunk.text:
            return self
        if not text and index > 0:
            return replace(self, chunks=self.chunks[:index] + self.chunks[index + 1 :])
        origin: Origin = "prompt" if chunk.origin == "prompt" else "edit"
        chunks = list(self.chunks)
        chunks[index] = replace(chunk, text=text, origin=origin)
        return replace(self, chunks=tuple(chunks))

    def edit_text(self, new_text: str) -> Story:
        """Apply an edit of the whole story text, keeping chunks the edit did not touch.

        Text added at the very end becomes a new "user" chunk (like `append`), or lengthens
        the last chunk if that is already the writer's: the editor saves while the writer
        types, and one typed passage must stay one step for Undo. Otherwise the
        changed span is found (common start and end); if it lies inside one chunk, that
        chunk is edited as by `edit`; if it spans several, they merge into one "edit" chunk
        (their versions are dropped). Undo and redo stacks are kept, as for `edit`.
        """
        old = self.full_text()
        if new_text == old:
            return self
        if new_text.startswith(old) and self.chunks:
            added, end = new_text[len(old) :], self.chunks[-1]
            if end.origin == "user":
                chunks = (*self.chunks[:-1], replace(end, text=end.text + added))
                return replace(self, chunks=chunks, redo_stack=())
            return self.append(added, "user")
        if not self.chunks:
            return self.append(new_text, "prompt")
        start, old_end, new_end = _changed_span(old, new_text)
        first, last = self._chunks_touching(start, old_end)
        first_start = sum(len(c.text) for c in self.chunks[:first])
        last_start = first_start + sum(len(c.text) for c in self.chunks[first:last])
        merged = (
            self.chunks[first].text[: start - first_start]
            + new_text[start:new_end]
            + self.chunks[last].text[old_end - last_start :]
        )
        if first == last:
            return self.edit(first, merged)
        origin: Origin = "prompt" if first == 0 else "edit"
        middle: tuple[Chunk, ...] = (Chunk(merged, origin),) if merged or first == 0 else ()
        return replace(self, chunks=self.chunks[:first] + middle + self.chunks[last + 1 :])

    def _chunks_touching(self, start: int, end: int) -> tuple[int, int]:
        """Indices of the first and last chunk overlapping [start, end). An empty span (an
        insertion) belongs to the chunk it ends, or chunk 0 at the very start."""
        bounds, pos = [], 0
        for chunk in self.chunks:
            bounds.append((pos, pos + len(chunk.text)))
            pos += len(chunk.text)
        if start == end:
            for i, (lo, hi) in enumerate(bounds):
                if lo < start <= hi:
                    return i, i
            return 0, 0
        touched = [i for i, (lo, hi) in enumerate(bounds) if lo < end and hi > start]
        return touched[0], touched[-1]


def _changed_span(old: str, new: str) -> tuple[int, int, int]:
    """(start, end in old, end in new) of the smallest span where the texts differ."""
    limit = min(len(old), len(new))
    start = 0
    while start < limit and old[start] == new[start]:
        start += 1
    tail = 0
    while tail < limit - start and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return start, len(old) - tail, len(new) - tail
