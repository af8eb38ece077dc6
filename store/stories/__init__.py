"""Stories: the chunked story model, and KoboldAI / Kobold Lite save files."""

from store.stories.codec import STORY_SCHEMA, StoryRecord, story_from_dict, story_to_dict
from store.stories.kobold import (
    dumps_story,
    export_story,
    import_story,
    load_story_file,
    story_from_text,
    to_plain_text,
)
from store.stories.model import (
    DEFAULT_AN_DEPTH,
    DEFAULT_AN_TEMPLATE,
    DEPTH_UNITS,
    MAX_VERSIONS,
    Chunk,
    DepthUnit,
    KoboldShape,
    Mode,
    Origin,
    Story,
    WIPlacement,
    WorldInfoEntry,
)
from store.stories.store import StoredStory, StoryStore

__all__ = [
    "Chunk",
    "DEFAULT_AN_DEPTH",
    "DEFAULT_AN_TEMPLATE",
    "DEPTH_UNITS",
    "DepthUnit",
    "KoboldShape",
    "MAX_VERSIONS",
    "Mode",
    "Origin",
    "STORY_SCHEMA",
    "StoredStory",
    "Story",
    "StoryRecord",
    "StoryStore",
    "WIPlacement",
    "WorldInfoEntry",
    "dumps_story",
    "export_story",
    "import_story",
    "load_story_file",
    "story_from_dict",
    "story_from_text",
    "story_to_dict",
    "to_plain_text",
]
