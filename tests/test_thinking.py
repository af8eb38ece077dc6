"""Thinking models: what was thought is shown folded, kept in the stored reply, and left
out of later prompts, the story's text and exports."""

from __future__ import annotations

import asyncio
import json

import pytest

from engine.fake import FakeBackend
from engine.prompts import Thought, answer_of, split_thinking
from presets.samplers import SamplerParams
from services.chat import bubbles, logic
from services.chat import reply as chat_reply
from services.chat.imports import for_export
from services.chat.logic import ChatSettings
from services.context import AppContext
from services.story import logic as story_logic
from store.chats import export_jsonl
from store.records import Message

SETTINGS = ChatSettings(params=SamplerParams(max_new_tokens=64))
PLAN = "The user greets me. I should greet them back."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"<think>\n{PLAN}\n</think>\n\nHello!", Thought(PLAN, "Hello!")),
        (f"  <think>{PLAN}", Thought(PLAN, "", closed=False)),  # still thinking
        (f"{PLAN}\n</think>\n\nHello!", Thought(PLAN, "Hello!")),  # the template opened the block
        ("<think></think>Hello!", Thought("", "Hello!")),  # thinking switched off
        ("Hello! I <think> so.", Thought("", "Hello! I <think> so.")),  # not at the start: text
        ("No thinking here.", Thought("", "No thinking here.")),
    ],
)
def test_a_reply_splits_into_thinking_and_answer(text: str, expected: Thought) -> None:
    assert split_thinking(text) == expected


def test_the_answer_alone_leaves_a_reply_without_thinking_as_it_is() -> None:
    assert answer_of(f"<think>{PLAN}</think>Hi") == "Hi"
    assert answer_of(f"<think>{PLAN}") == ""
    assert answer_of("  plain  ") == "  plain  "


def test_a_bubble_folds_the_thinking_above_the_answer() -> None:
    meta = {"thinking_tokens": 42, "thinking_seconds": 3.24}
    html = bubbles.message_html(f"<think>{PLAN} <b>x</b></think>\n\n**Hello!**", meta)
    assert html.startswith('<details class="hearth-think"><summary>Thought for 3.2 s · 42 tokens</summary>')
    assert "&lt;b&gt;x&lt;/b&gt;" in html and html.endswith("</details><p><strong>Hello!</strong></p>")
    thinking = bubbles.message_html(f"<think>{PLAN}")
    assert thinking.startswith('<details class="hearth-think" open><summary>Thinking…</summary>')
    assert bubbles.message_html("Hello!") == "<p>Hello!</p>"


def test_a_thinking_reply_is_kept_whole_shown_folded_and_left_out_of_the_next_prompt(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    view = logic.new_chat(fake_ctx, SETTINGS)
    view = logic.send(fake_ctx, view, "Hi there", SETTINGS)
    fake_backend.enqueue(
        ["<think>", "\nThe", " user", " greets", " me", ".\n", "</think>", "\n\n", "Hello", "!"]
    )
    run = chat_reply.start(fake_ctx, view, "me")

    async def collect() -> list[str]:
        return [text async for text in chat_reply.stream(run, interval=0.001)]

    shown = asyncio.run(collect())
    run.wait(10)
    assert "<summary>Thought" in shown[-1] and shown[-1].endswith("<p>Hello!</p>")
    # While it thinks, the reply being written shows the block open.
    assert '<details class="hearth-think" open><summary>Thinking…' in chat_reply.shown_reply(
        "<think>The user"
    )
    [_, reply] = fake_ctx.store.sessions.messages(view.session_id)
    assert reply.text == "<think>\nThe user greets me.\n</think>\n\nHello!"  # nothing is lost
    assert reply.meta["thinking_tokens"] == fake_ctx.models.count_tokens("The user greets me.")
    assert reply.meta["thinking_seconds"] >= 0
    history, _, _ = logic.visible_history(fake_ctx, view)
    assert "<summary>Thought" in history[-1]["content"] and "Hello!" in history[-1]["content"]

    view = logic.send(fake_ctx, view, "How are you?", SETTINGS)
    prepared = chat_reply.build_prompt(fake_ctx, view)
    assert "Hello!" in prepared.request.prompt
    assert "greets me" not in prepared.request.prompt and "think>" not in prepared.request.prompt


def test_thinking_is_never_story_text() -> None:
    assert (
        story_logic.reply_text(f"<think>{PLAN}</think>\n\nThe door creaked.  ", "story")
        == "The door creaked."
    )
    assert story_logic.reply_text(f"<think>{PLAN}", "adventure") == ""


def test_exports_leave_the_thinking_out(fake_ctx: AppContext) -> None:
    view = logic.new_chat(fake_ctx, SETTINGS)
    sessions = fake_ctx.store.sessions
    sessions.append(view.session_id, Message("user", "<think>typed by the user</think>"))
    sessions.append(
        view.session_id,
        Message("assistant", f"<think>{PLAN}</think>Hello!", swipes=(f"<think>{PLAN}</think>Hello!", "Hey!")),
    )
    exported = for_export(sessions.messages(view.session_id))
    assert [m.text for m in exported] == ["<think>typed by the user</think>", "Hello!"]
    assert exported[1].swipes == ("Hello!", "Hey!")
    data = export_jsonl(sessions.get(view.session_id), exported, user_name="You", character_name="Ann")
    lines = data.decode().splitlines()
    assert PLAN not in data.decode() and json.loads(lines[-1])["mes"] == "Hello!"
