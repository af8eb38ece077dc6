"""Thinking models: what was thought is shown folded, kept in the stored reply, and left
out of later prompts, the story's text and exports."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace

import pytest

from engine.fake import FakeBackend
from engine.prompts import ThinkingStream, Thought, answer_of, split_thinking
from engine.run import Run
from engine.think_budget import BUDGET_CLOSE
from engine.types import FinishReason, GenerationRequest, LoadOptions
from presets.samplers import SamplerParams
from services.chat import bubbles, logic
from services.chat import reply as chat_reply
from services.chat.imports import for_export
from services.chat.logic import ChatSettings, ChatView
from services.chat.thinking import (
    EMPTY_BLOCK,
    ThinkingSettings,
    model_thinks,
    set_thinking,
    thinking_settings,
)
from services.context import AppContext
from services.story import logic as story_logic
from store.chats import export_jsonl
from store.errors import InvalidInputError
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
    stopped = bubbles.message_html(f"<think>{PLAN}", {})  # saved mid-thought
    assert stopped.startswith('<details class="hearth-think"><summary>Thought (cut off)</summary>')


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


def budget_request(budget: int, *, opened: bool = False, max_new_tokens: int = 40) -> GenerationRequest:
    params = SamplerParams(max_new_tokens=max_new_tokens)
    return GenerationRequest("Q: hi\nA:", params, think_budget=budget, thinking_opened=opened)


def test_a_thinking_budget_closes_the_block_and_the_model_answers_after_it() -> None:
    backend = FakeBackend()
    backend.enqueue(["<think>", *[" hmm"] * 30, "</think>", "never"])  # would think for 30
    backend.enqueue(["Hello", "!"])  # what it writes once the block is closed for it
    run = Run(backend, budget_request(8)).start()
    finish = run.wait(5)
    thought = split_thinking(run.text)
    assert thought.answer == "Hello!" and thought.thinking.count("hmm") == 8 - 2  # "<think>" is 3 tokens here
    assert run.text.endswith(f"{BUDGET_CLOSE}Hello!")
    second = backend.calls[1]
    assert second.prompt == "Q: hi\nA:" + run.text.removesuffix("Hello!")  # continued where it stopped
    assert second.params.max_new_tokens == 40 - finish.usage.completion_tokens + 2
    assert finish.reason is FinishReason.STOP and finish.usage.prompt_tokens == len(
        backend.tokenize("Q: hi\nA:")
    )


def test_a_budget_leaves_a_model_that_stops_thinking_in_time_alone() -> None:
    backend = FakeBackend()
    backend.enqueue(["<think>", " ok", "</think>", " Hi", "!"])
    run = Run(backend, budget_request(20)).start()
    assert run.wait(5).reason is FinishReason.STOP
    assert run.text == "<think> ok</think> Hi!" and len(backend.calls) == 1


def test_a_budget_closes_a_block_the_prompt_opened() -> None:
    backend = FakeBackend()
    backend.enqueue([" step"] * 10)
    backend.enqueue(["Done", "."])
    run = Run(backend, budget_request(4, opened=True)).start()
    run.wait(5)
    assert run.text == " step" * 4 + BUDGET_CLOSE + "Done."
    assert split_thinking(run.text) == Thought("step step step step", "Done.")


@pytest.fixture
def thinking_ctx(fake_ctx: AppContext, fake_backend: FakeBackend) -> AppContext:
    """The fake model, with a chat template that writes thinking blocks (as Qwen3's does)."""
    template = "{% for m in messages %}{{ m.content }}{% endfor %}{{ '<think>' if false }}"
    thinking = FakeBackend(n_ctx=2048, info=replace(fake_backend.info, chat_template=template))
    fake_ctx.models.attach(thinking, LoadOptions(n_ctx=2048))
    return fake_ctx


def chat_with_a_thought(ctx: AppContext) -> ChatView:
    view = logic.new_chat(ctx, SETTINGS)
    ctx.store.sessions.append(view.session_id, Message("user", "Hi there"))
    ctx.store.sessions.append(view.session_id, Message("assistant", f"<think>{PLAN}</think>\n\nHello!"))
    return logic.send(ctx, view, "How are you?", SETTINGS)


def test_a_chat_can_keep_its_thinking_in_later_prompts(thinking_ctx: AppContext) -> None:
    view = chat_with_a_thought(thinking_ctx)
    assert PLAN not in chat_reply.build_prompt(thinking_ctx, view).request.prompt
    set_thinking(thinking_ctx, view.session_id, "keep", 0)
    assert f"<think>{PLAN}</think>" in chat_reply.build_prompt(thinking_ctx, view).request.prompt


def test_thinking_off_starts_the_reply_with_an_empty_block_and_the_budget_reaches_the_run(
    thinking_ctx: AppContext,
) -> None:
    view = chat_with_a_thought(thinking_ctx)
    prepared = chat_reply.build_prompt(thinking_ctx, view)
    assert prepared.request.prompt.endswith("Assistant:") and prepared.request.think_budget == 0
    set_thinking(thinking_ctx, view.session_id, "hide", 300)
    assert chat_reply.build_prompt(thinking_ctx, view).request.think_budget == 300
    set_thinking(thinking_ctx, view.session_id, "off", 300)
    prepared = chat_reply.build_prompt(thinking_ctx, view)
    assert prepared.request.prompt.endswith(f"Assistant:{EMPTY_BLOCK}") and prepared.request.think_budget == 0
    # The empty block is part of the reply prefix, which the inspector itemizes.
    [tail] = [s for s in prepared.fitted.spans if s.end == len(prepared.fitted.text)]
    assert prepared.fitted.text[tail.start : tail.end].endswith(EMPTY_BLOCK)


@pytest.mark.parametrize(
    ("name", "template", "thinks"),
    [
        ("QwQ-32B-Q4_K_M", "", True),
        ("DeepSeek-R1-Distill-Qwen-7B", "", True),
        ("Mistral-7B-Instruct", "", False),
        ("qwen3-but-the-template-says-no", "{% for m in messages %}{{ m.content }}{% endfor %}", False),
    ],
)
def test_a_model_without_a_template_thinks_by_its_name(
    fake_ctx: AppContext, fake_backend: FakeBackend, name: str, template: str, thinks: bool
) -> None:
    info = replace(fake_backend.info, name=name, chat_template=template)
    fake_ctx.models.attach(FakeBackend(n_ctx=2048, info=info), LoadOptions(n_ctx=2048))
    assert model_thinks(fake_ctx, fake_ctx.formats["chatml"]) is thinks


def test_a_model_that_does_not_think_is_left_as_it_is(fake_ctx: AppContext) -> None:
    view = chat_with_a_thought(fake_ctx)
    set_thinking(fake_ctx, view.session_id, "off", 300)
    prepared = chat_reply.build_prompt(fake_ctx, view)
    assert prepared.request.prompt.endswith("Assistant:") and prepared.request.think_budget == 0


@pytest.mark.parametrize(
    ("mode", "budget"), [("sometimes", 0), ("hide", -1), ("hide", "lots"), ("off", 10**9)]
)
def test_odd_thinking_settings_are_refused(fake_ctx: AppContext, mode: str, budget: object) -> None:
    view = logic.new_chat(fake_ctx, SETTINGS)
    with pytest.raises(InvalidInputError):
        set_thinking(fake_ctx, view.session_id, mode, budget)
    assert thinking_settings(fake_ctx.store.sessions.get(view.session_id)) == ThinkingSettings()


def test_the_kv_cache_still_hits_on_the_turn_after_a_thought(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    """The thinking leaves the history, so the cache matches up to where it began: the
    next turn evaluates about what is new (the answer and the new message), not more."""
    view = logic.new_chat(fake_ctx, SETTINGS)
    view = logic.send(fake_ctx, view, "Hi there", SETTINGS)
    fake_backend.enqueue(["<think>", *[" reasoning"] * 40, "</think>", "\n\n", "Hello", "!"])
    first = chat_reply.start(fake_ctx, view, "me")
    first.wait(10)
    view = logic.send(fake_ctx, view, "How are you?", SETTINGS)
    second = chat_reply.start(fake_ctx, view, "me")
    usage = second.wait(10).usage
    new = usage.prompt_tokens - len(fake_backend.tokenize(first.request.prompt))
    assert usage.prompt_reused >= len(fake_backend.tokenize(first.request.prompt))
    assert 0 < usage.prompt_evaluated <= 2 * new


def test_a_streamed_reply_splits_the_same_wherever_its_pieces_break() -> None:
    text = "  <think>\nplan a </thin k> b\n</think>\n\nHello <think> world"
    for seed in range(200):
        rng = random.Random(seed)
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, 12)))
        stream = ThinkingStream()
        pieces = [stream.feed(text[a:b]) for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        out = [piece for fed in pieces for piece in fed] + stream.flush()
        assert "".join(t for kind, t in out if kind == "thinking") == "\nplan a </thin k> b\n", cuts
        assert "".join(t for kind, t in out if kind == "answer") == "\n\nHello <think> world", cuts
    opened = ThinkingStream(opened=True)
    assert opened.feed("step one</th") == [("thinking", "step one")]
    assert opened.feed("ink>Done") == [("answer", "Done")]
    plain = ThinkingStream()
    assert plain.feed("<th") == [] and plain.feed("e end") == [("answer", "<the end")]
