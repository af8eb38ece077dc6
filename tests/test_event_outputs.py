"""Every event handler returns one value per output, as the page calls it.

Gradio fills outputs by position. A handler that returns a value too many is logged with
every value it returned (a card's whole text, a chat's messages), and the values after
the extra one land in the wrong widgets: the chat switch returned the persona's avatar
where no output took it, so the world books showed unticked (issue 14). One too few fails.

Each handler is called once through Gradio (`Blocks.process_api`), with the values its
inputs start with on a fresh page. A handler that refuses those values (nothing picked
yet) says nothing about its outputs and is not counted; enough others are.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import warnings
from typing import Any

import gradio as gr
import pytest
from gradio.block_function import BlockFunction
from gradio.state_holder import SessionState

from services.context import AppContext
from store.cards import CharacterCard
from ui.page import build
from ui.shared import LLM_QUEUE

# Model runs and model loads are checked elsewhere (test_streaming_outputs, the browser tests).
NOT_CALLED = {LLM_QUEUE, "model-jobs"}


def handlers(demo: gr.Blocks) -> list[BlockFunction]:
    """Each handler once: the same code wired to as many outputs again (a tab's page load
    after every way of loading a model, one per catalog card) returns as many values."""
    seen: set[tuple[Any, ...]] = set()
    found = []
    for fn in demo.fns.values():
        code = getattr(inspect.unwrap(fn.fn), "__code__", fn.fn) if fn.fn is not None else None
        key = (code, len(fn.outputs))
        if fn.fn is None or fn.concurrency_id in NOT_CALLED or key in seen:
            continue
        seen.add(key)
        found.append(fn)
    return found


async def call(demo: gr.Blocks, fn: BlockFunction, state: SessionState) -> str | None:
    """None when the handler returned one value per output (or refused the call), else why not."""
    inputs = [block.get_config().get("value") for block in fn.inputs]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            await asyncio.wait_for(demo.process_api(fn, inputs, state=state), timeout=120)
        except gr.Error:
            return "refused"
        except ValueError as exc:
            if "output values" not in str(exc):
                raise
            return str(exc).splitlines()[0]
    counts = [str(w.message).splitlines()[0] for w in caught if "output values" in str(w.message)]
    return counts[0] if counts else None


def test_every_handler_returns_one_value_per_output(fake_ctx: AppContext) -> None:
    demo = build(fake_ctx)
    state = SessionState(demo)

    async def call_all() -> dict[str, list[str | None]]:
        results: dict[str, list[str | None]] = {}
        for fn in handlers(demo):
            results.setdefault(fn.name or "?", []).append(await call(demo, fn, state))
        return results

    results = asyncio.run(call_all())
    wrong = {name: found for name, found in results.items() if any(f not in (None, "refused") for f in found)}
    assert not wrong
    checked = {name for name, found in results.items() if None in found}
    # The chat's page load, New chat, the chat list, a character picked: each fills the
    # whole tab (the switch), world books and persona included.
    assert {"load", "on_new", "on_select", "on_character"} <= checked
    assert len(checked) >= 30


def test_switching_chats_logs_nothing_a_card_or_chat_says(
    fake_ctx: AppContext, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # A mismatched switch had Gradio print every value it returned: the whole card.
    secret = "Marker keeps a diary under the third floorboard."
    summary = fake_ctx.store.characters.create_blank("Marker")
    fake_ctx.store.characters.save(summary.id, CharacterCard(name="Marker", description=secret))
    demo = build(fake_ctx)
    (pick,) = [fn for fn in handlers(demo) if fn.name == "on_character"]
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(demo.process_api(pick, [summary.id], state=SessionState(demo)))
    out, err = capfd.readouterr()
    logged = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records] + [out, err]
    assert not [text for text in logged if secret in text]
