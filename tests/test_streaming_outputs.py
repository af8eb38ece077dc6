"""Streaming cost must not grow with history: every model run streams into a small live
box, never into the windowed history or a transcript (the page re-renders whatever a
streamed update names, once per update)."""

from __future__ import annotations

from services.context import AppContext
from ui.page import build
from ui.shared import LLM_QUEUE

# Impersonate streams your next message into the message box; a story's reply is
# followed into its box through the marker in "story-live" (services.live).
LIVE_BOXES = {"live-reply", "adventure-live", "story-text", "story-live", "message"}


def test_model_runs_stream_only_into_a_live_box(fake_ctx: AppContext) -> None:
    demo = build(fake_ctx)
    runs = [
        (fn.name, [getattr(out, "elem_id", None) for out in fn.outputs])
        for fn in demo.fns.values()
        if fn.concurrency_id == LLM_QUEUE
    ]
    # Chat: reply, continue, regenerate, swipe, impersonate; Story: 2; Adventure: 4.
    assert len(runs) >= 11
    for name, outputs in runs:
        assert set(outputs) <= LIVE_BOXES, (name, outputs)
