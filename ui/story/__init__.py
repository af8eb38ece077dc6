"""The Story and Adventure tabs, which share a story list and a steering panel."""

from ui.story.adventure import build as build_adventure
from ui.story.tab import build as build_story

__all__ = ["build_adventure", "build_story"]
