"""What every tab shares: who owns a run, the generation queue, and the handle a tab gives the app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

LLM_QUEUE = "llm"  # every listener that generates shares this queue, whichever tab it is in


def owner_of(request: gr.Request | None) -> str:
    """Runs and downloads belong to the browser session that started them, so Stop and Cancel
    are per user."""
    return (request.session_hash if request is not None else None) or "anonymous"


@dataclass
class TabHandle:
    """What the app needs from a tab: `load_fn` fills `outputs` from `state` (and what the
    browser `remembers`), when the page opens and after a model loads (a new model changes
    what fits)."""

    load_fn: Callable[..., tuple[Any, ...]]
    state: gr.State
    outputs: list[Any]
    remembers: list[Any] = field(default_factory=list)  # unrendered gr.BrowserState inputs, after `state`
