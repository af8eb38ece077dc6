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

__all__ = [
    "DEFAULT_AN_DEPTH",
    "DEPTH_UNITS",
    "DEFAULT_AN_TEMPLATE",
    "MAX_VERSIONS",
    "STORY_SCHEMA",
    "Chunk",
    "DepthUnit",
    "KoboldShape",
    "Mode",
    "Origin",
    "Story",
    "StoryRecord",
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
