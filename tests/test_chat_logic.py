"""The Chat tab's logic, driven directly with the fake backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.fake import FakeBackend
from engine.types import FinishReason
from presets.samplers import DEFAULT_PRESET, SamplerParams
from services.chat import actions as chat_actions
from services.chat import logic
from services.chat import reply as chat_reply
from services.chat.logic import ChatSettings, ChatView
from services.chat.reply import ReplyMode
from services.context import AppContext
from services.render import inert_html
from store.errors import StoreError
from store.records import Message

SETTINGS = ChatSettings(params=SamplerParams(max_new_tokens=32))


def generate(
    ctx: AppContext, view: ChatView, mode: ReplyMode = "reply", owner: str = "me"
) -> tuple[str, FinishReason]:
    run = chat_reply.start(ctx, view, owner, mode)

    async def collect() -> list[str]:
        return [text async for text in chat_reply.stream(run, interval=0.001)]

    streamed = asyncio.run(collect())
    finish = run.wait(10)
    return (streamed[-1] if streamed else ""), finish.reason


def texts(ctx: AppContext, view: ChatView) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in ctx.store.sessions.messages(view.session_id)]


def body(bubble: str) -> str:
    """A message's own HTML, inside its bubble's frame (name line above, actions below)."""
    return bubble.split('<div class="hearth-text">', 1)[1].rsplit('</div><div class="hearth-acts">', 1)[0]


def anchor_of(ctx: AppContext, view: ChatView) -> int | None:
    last = ctx.store.sessions.messages(view.session_id, last=1)[0]
    return last.meta.get("anchor")


def test_send_and_reply_are_saved(fake_ctx: AppContext, fake_backend: FakeBackend) -> None:
    view = logic.new_chat(fake_ctx, SETTINGS)
    fake_backend.enqueue(["Paris", " is", " the", " capital", "."])
    view = logic.send(fake_ctx, view, "  What is the capital of France?  ", SETTINGS)
    shown, reason = generate(fake_ctx, view)
    assert (shown, reason) == ("<p>Paris is the capital.</p>", FinishReason.STOP)
    assert texts(fake_ctx, view) == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris is the capital."),
    ]
    reply = fake_ctx.store.sessions.messages(view.session_id)[1]
    assert reply.meta["finish"] == "stop"
    assert fake_ctx.store.sessions.get(view.session_id).title == "What is the capital of France?"
    prompt = fake_backend.calls[-1].prompt
    assert prompt.endswith("User: What is the capital of France?\nAssistant:")
    assert fake_backend.calls[-1].stop == ("\nUser:",)


def test_empty_message_is_refused(fake_ctx: AppContext) -> None:
    with pytest.raises(StoreError, match="Type a message first"):
        logic.send(fake_ctx, logic.new_chat(fake_ctx), "   ", SETTINGS)


def test_stop_keeps_the_partial_reply(fake_ctx: AppContext) -> None:
    backend = FakeBackend(delay=0.02)
    fake_ctx.models.attach(backend)
    backend.enqueue([f" word{i}" for i in range(200)])
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "Tell me a long story", SETTINGS)
    run = chat_reply.start(fake_ctx, view, "me")
    while len(run.text) < 20:
        time.sleep(0.005)
    assert fake_ctx.models.stop("me")
    assert run.wait(10).reason is FinishReason.CANCELLED
    saved = fake_ctx.store.sessions.messages(view.session_id)[-1]
    assert saved.role == "assistant" and saved.text.startswith("word0 word1")
    assert saved.meta["finish"] == "cancelled"


def test_regenerate_adds_a_swipe_and_swipes_move_between_versions(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "Hi", SETTINGS)
    fake_backend.enqueue(["First", " answer"])
    generate(fake_ctx, view)
    fake_backend.enqueue(["Second", " answer"])
    generate(fake_ctx, view, "swipe")
    last = chat_actions.last_message(fake_ctx, view.session_id)
    assert last is not None
    assert (last.text, last.swipes, last.swipe_index) == (
        "Second answer",
        ("First answer", "Second answer"),
        1,
    )
    assert "First answer" not in fake_backend.calls[-1].prompt  # the replaced reply is not in its own prompt
    assert chat_actions.swipe_label(fake_ctx, view.session_id) == "Reply 2 of 2"
    assert chat_actions.swipe(fake_ctx, view.session_id, -1) is False
    assert texts(fake_ctx, view)[-1] == ("assistant", "First answer")
    assert chat_actions.swipe(fake_ctx, view.session_id, -1) is False  # already the first: stays
    assert chat_actions.swipe(fake_ctx, view.session_id, +1) is False
    assert chat_actions.swipe(fake_ctx, view.session_id, +1) is True  # past the newest: generate
    fake_backend.enqueue(["Next", " turn"])
    view = logic.send(fake_ctx, view, "And then?", SETTINGS)
    generate(fake_ctx, view)
    assert "Second answer" in fake_backend.calls[-1].prompt  # only the selected version counts
    assert "First answer" not in fake_backend.calls[-1].prompt


def test_continue_extends_the_last_reply(fake_ctx: AppContext, fake_backend: FakeBackend) -> None:
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "Count", SETTINGS)
    fake_backend.enqueue(["One,", " two"])
    generate(fake_ctx, view)
    fake_backend.enqueue([",", " three", "."])
    generate(fake_ctx, view, "continue")
    assert fake_backend.calls[-1].prompt.endswith("Assistant: One, two")
    assert texts(fake_ctx, view)[-1] == ("assistant", "One, two, three.")


def test_impersonate_writes_the_users_line_and_saves_nothing(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "Hello", SETTINGS)
    generate(fake_ctx, view)
    before = texts(fake_ctx, view)
    fake_backend.enqueue(["Tell", " me", " more"])
    run = chat_reply.start(fake_ctx, view, "me", "impersonate")
    run.wait(10)
    assert run.text.strip() == "Tell me more"
    assert fake_backend.calls[-1].prompt.endswith("User:")
    assert texts(fake_ctx, view) == before


def test_edit_delete_hide_branch(fake_ctx: AppContext, fake_backend: FakeBackend) -> None:
    view = logic.new_chat(fake_ctx)
    for i in range(3):
        view = logic.send(fake_ctx, view, f"question {i}", SETTINGS)
        fake_backend.enqueue([f"answer {i}"])
        generate(fake_ctx, view)
    chat_actions.edit_message(fake_ctx, view.session_id, 1, "edited answer")
    assert texts(fake_ctx, view)[1] == ("assistant", "edited answer")
    assert chat_actions.toggle_hidden(fake_ctx, view.session_id, 2) is True
    fake_backend.enqueue(["x"])
    view = logic.send(fake_ctx, view, "question 3", SETTINGS)
    generate(fake_ctx, view)
    assert "question 1" not in fake_backend.calls[-1].prompt  # hidden: kept but not sent
    shown, _, _ = logic.visible_history(fake_ctx, view)
    assert body(shown[2]["content"]).startswith("<p><em>(hidden from the prompt)</em></p>")
    branch = chat_actions.branch(fake_ctx, view.session_id, 1)
    assert [m.text for m in fake_ctx.store.sessions.messages(branch.id)] == ["question 0", "edited answer"]
    assert branch.extra["branched_from"] == {"session": view.session_id, "message": 1}
    chat_actions.delete_message(fake_ctx, view.session_id, 0)
    assert texts(fake_ctx, view)[0] == ("assistant", "edited answer")
    with pytest.raises(StoreError, match="cannot be empty"):
        chat_actions.edit_message(fake_ctx, view.session_id, 0, "  ")


def test_settings_are_stored_per_chat(fake_ctx: AppContext, fake_backend: FakeBackend) -> None:
    settings = ChatSettings(
        "You are a pirate.", "chatml", "Precise", SamplerParams(temperature=0.3, max_new_tokens=16)
    )
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "Ahoy", settings)
    generate(fake_ctx, view)
    session = fake_ctx.store.sessions.get(view.session_id)
    assert logic.settings_for(fake_ctx, session) == settings
    request = fake_backend.calls[-1]
    assert request.prompt.startswith("<|im_start|>system\nYou are a pirate.<|im_end|>\n")
    assert request.params.temperature == 0.3
    assert "<|im_end|>" in request.stop


def test_sessions_switch_rename_delete(fake_ctx: AppContext) -> None:
    first = logic.send(fake_ctx, logic.new_chat(fake_ctx), "first chat", SETTINGS)
    second = logic.send(fake_ctx, logic.new_chat(fake_ctx), "second chat", SETTINGS)
    choices = logic.session_choices(fake_ctx)
    assert [value for _, value in choices] == [second.session_id, first.session_id]
    logic.rename(fake_ctx, first, "Renamed")
    assert logic.session_choices(fake_ctx)[0][0].startswith("Renamed · ")
    assert [s.id for s in logic.chats_of(fake_ctx, None, "renam")] == [first.session_id]
    after = logic.delete(fake_ctx, first)
    assert after.session_id == second.session_id
    assert logic.ensure_session(fake_ctx, ChatView(session_id="not-an-id")).session_id == second.session_id


def test_history_shows_a_window_with_older_messages_on_request(fake_ctx: AppContext) -> None:
    view = logic.new_chat(fake_ctx)
    for i in range(logic.WINDOW + 15):
        fake_ctx.store.sessions.append(
            view.session_id, Message("user" if i % 2 == 0 else "assistant", f"m{i}")
        )
    shown, hidden, view = logic.visible_history(fake_ctx, view)
    assert len(shown) == logic.WINDOW and hidden == 15
    assert body(shown[-1]["content"]) == f"<p>m{logic.WINDOW + 14}</p>"
    assert view.shown[0] == 15  # each bubble knows its message
    wider = ChatView(session_id=view.session_id, window=logic.WINDOW * 2)
    shown, hidden, _ = logic.visible_history(fake_ctx, wider)
    assert len(shown) == logic.WINDOW + 15 and hidden == 0


def test_html_in_messages_is_shown_as_text(fake_ctx: AppContext) -> None:
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "<img src=x onerror=alert(1)> **bold**", SETTINGS)
    shown, _, _ = logic.visible_history(fake_ctx, view)
    assert body(shown[0]["content"]) == "<p>&lt;img src=x onerror=alert(1)&gt; <strong>bold</strong></p>"


def test_long_chat_is_trimmed_to_fit_and_anchored(fake_ctx: AppContext) -> None:
    backend = FakeBackend(n_ctx=300)
    fake_ctx.models.attach(backend)
    view = logic.new_chat(fake_ctx, ChatSettings(params=SamplerParams(max_new_tokens=40)))
    anchors = []
    for i in range(60):
        view = logic.send(fake_ctx, view, f"Message number {i} with a few more words in it", SETTINGS)
        backend.enqueue(["An", " answer", " of", " several", " words", "."])
        _, reason = generate(fake_ctx, view)
        assert reason is FinishReason.STOP
        anchors.append(anchor_of(fake_ctx, view))
        assert len(backend.tokenize(backend.calls[-1].prompt)) <= 300 - 32
    assert anchors[-1] is not None and anchors[-1] > 0  # old messages were dropped
    changes = sum(1 for a, b in zip(anchors, anchors[1:], strict=False) if a != b)
    assert changes < 30  # the start moves in chunks, not every turn
    assert "Context: " in chat_reply.context_status(fake_ctx, view)
    view = logic.send(fake_ctx, view, "one more", SETTINGS)  # no reply yet: the estimate shows
    assert "older messages left out" in chat_reply.context_status(fake_ctx, view)


def test_inert_html_keeps_code_literal() -> None:
    text = "a <b> & `<i>` c\n```\n<script>x</script>\n```\n> quote ![img](http://x/y.png)"
    assert inert_html(text) == (
        "<p>a &lt;b&gt; &amp; <code>&lt;i&gt;</code> c</p>"
        '<div class="hearth-code"><span class="hearth-copy-code" role="button" tabindex="0">Copy</span>'
        "<pre><code>&lt;script&gt;x&lt;/script&gt;&#10;</code></pre></div>"
        "<blockquote><p>quote img</p></blockquote>"
    )


def test_an_empty_reply_saves_nothing_and_is_reported(
    fake_ctx: AppContext, fake_backend: FakeBackend
) -> None:
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "Hi", SETTINGS)
    fake_backend.enqueue(["  ", "\n"])
    run = chat_reply.start(fake_ctx, view, "me")
    run.wait(timeout=10)
    assert chat_reply.came_back_empty(run, "reply")
    assert [m.role for m in fake_ctx.store.sessions.messages(view.session_id)] == ["user"]
    fake_backend.enqueue(["Hello there."])
    run = chat_reply.start(fake_ctx, view, "me")
    run.wait(timeout=10)
    assert not chat_reply.came_back_empty(run, "reply")
    assert texts(fake_ctx, view)[-1] == ("assistant", "Hello there.")


def test_estimated_token_counts_are_labelled_before_and_after_a_reply(
    fake_ctx: AppContext, fake_backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "Hi", SETTINGS)
    fake_backend.enqueue(["Hello there."])
    chat_reply.start(fake_ctx, view, "me").wait(timeout=10)
    assert "(estimated)" not in chat_reply.context_status(fake_ctx, view)  # exact counts
    monkeypatch.setattr(FakeBackend, "token_count_is_estimate", property(lambda _self: True))
    assert chat_reply.context_status(fake_ctx, view).startswith("Context: ")
    assert " tokens (estimated)" in chat_reply.context_status(fake_ctx, view)  # the reply's record
    view = logic.send(fake_ctx, view, "And now?", SETTINGS)
    assert " tokens (estimated)" in chat_reply.context_status(fake_ctx, view)  # the next prompt's estimate


def test_a_new_chat_starts_on_the_automatic_format_and_the_default_preset(fake_ctx: AppContext) -> None:
    # A format picked for one model must not carry into chats with the next (auto-detection).
    leaving = ChatSettings("You are a pirate.", "chatml", "Precise", SamplerParams(temperature=0.3))
    logic.save_settings(fake_ctx, logic.new_chat(fake_ctx), leaving)
    view = logic.next_chat(fake_ctx, leaving, None)
    fresh = logic.settings_for(fake_ctx, fake_ctx.store.sessions.get(view.session_id))
    default = fake_ctx.presets()[DEFAULT_PRESET]
    assert (fresh.format_choice, fresh.preset) == (logic.AUTO_FORMAT, DEFAULT_PRESET)
    assert fresh.params == default.params
    assert fresh.system_prompt == "You are a pirate."  # what the user wrote goes on


def test_a_page_reopens_the_chat_its_browser_was_last_in(fake_ctx: AppContext) -> None:
    first = logic.send(fake_ctx, logic.new_chat(fake_ctx), "first", SETTINGS)
    newest = logic.send(fake_ctx, logic.new_chat(fake_ctx), "second", SETTINGS)
    assert logic.reopen(fake_ctx, None, None).session_id == newest.session_id
    assert logic.reopen(fake_ctx, None, first.session_id).session_id == first.session_id
    assert logic.reopen(fake_ctx, newest, first.session_id) == newest  # a page showing a chat keeps it
    fake_ctx.store.sessions.delete(first.session_id)
    for gone in (first.session_id, "../../etc", 42):
        assert logic.reopen(fake_ctx, None, gone).session_id == newest.session_id
