"""Words for Hearth's own Markdown: outside text made safe to show, and a progress bar."""

from __future__ import annotations

import re

_MARKS = re.compile(r"[\\\[\]|]")  # backslash, brackets, pipe


def md(text: str) -> str:
    """Text from a file, a card or the Hub for Hearth's own Markdown, on one line: no HTML,
    no entity, no table break, and no link or image (escaped brackets, and escaped
    backslashes so that none can undo that). Emphasis marks stay active."""
    text = " ".join(text.splitlines()).replace("&", "&amp;").replace("<", "&lt;")
    return _MARKS.sub(r"\\\g<0>", text)


def progress_bar(fraction: float, width: int = 20) -> str:
    """A text progress bar: it renders anywhere Markdown does, and screen readers read the percent."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)
