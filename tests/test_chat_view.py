"""What the chat view shows and guards, without a browser: speakers and actions on each
bubble, the order of messages while a reply is written, Undo for a delete, the chat
list, the default system prompt, and the line about the loaded model."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from engine.fake import FakeBackend
from engine.types import Chunk, Finish, GenerationRequest
from presets.samplers import SamplerParams
from services.chat import actions as chat_actions
from services.chat import bubbles, logic
from services.chat import reply as chat_reply
from services.chat.characters import ROLEPLAY_SYSTEM
from services.chat.logic import ChatBusyError, ChatSettings, ChatView
from services.context import AppContext
from store.cards import CharacterCard, plain_png
from store.records import Message

SETTINGS = ChatSettings(params=SamplerParams(max_new_tokens=32))
PNG = plain_png(4, 4, (200, 120, 60))


class GatedBackend(FakeBackend):
    """Replies only once `gate` is set, so a test can act while a reply is being written."""

    def __init__(self) -> None:
        super().__init__(n_ctx=2048)
        self.gate = threading.Event()

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> Iterator[Chunk | Finish]:
        self.gate.wait(30)
        yield from super().generate(request, cancel)


def texts(ctx: AppContext, view: ChatView) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in ctx.store.sessions.messages(view.session_id)]


def names(bubble: str) -> list[str]:
    return re.findall(r'<span class="hearth-name">(.*?)</span>', bubble)


def actions(bubble: str) -> list[str]:
    return re.findall(r'class="hearth-act act-([a-z-]+) seq-(\d+)"', bubble)


def character(ctx: AppContext, name: str, picture: bool = False) -> str:
    summary = ctx.store.characters.create_blank(name)
    card = ctx.store.characters.get(summary.id).card
    ctx.store.characters.save(summary.id, replace(card, first_mes=f"Hello, I am {name}."))
    if picture:
        ctx.store.characters.set_avatar(summary.id, PNG)
    return summary.id


# -- bubbles -------------------------------------------------------------------------------


def test_every_bubble_names_its_speaker_with_a_picture_or_an_initial(fake_ctx: AppContext) -> None:
    luna = character(fake_ctx, "Luna <b>", picture=True)
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx, SETTINGS, character_id=luna), "Hi", SETTINGS)
    ann = fake_ctx.store.personas.create("Ann")
    fake_ctx.store.personas.set_default(ann.id)
    shown, _, _ = logic.visible_history(fake_ctx, view)
    greeting, mine = (m["content"] for m in shown)
    assert names(greeting) == ["Luna &lt;b&gt;"] and names(mine) == ["Ann"]
    avatar = fake_ctx.store.characters.get(luna).avatar_path
    assert avatar is not None
    assert f'<img class="hearth-avatar" src="gradio_api/file={avatar}?v=' in greeting
    assert '<span class="hearth-avatar hearth-initial hearth-hue-' in mine and ">A</span>" in mine
    fake_ctx.store.personas.set_avatar(ann.id, PNG)
    mine = logic.visible_history(fake_ctx, view)[0][1]["content"]
    assert f"gradio_api/file={fake_ctx.store.personas.avatar_path(ann.id)}?v=" in mine


def test_each_bubble_has_its_actions_and_only_the_latest_reply_swipes(fake_ctx: AppContext) -> None:
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "one", SETTINGS)
    fake_ctx.store.sessions.append(
        view.session_id, Message("assistant", "two", swipes=("x", "two"), swipe_index=1)
    )
    view = logic.send(fake_ctx, view, "three", SETTINGS)
    fake_ctx.store.sessions.append(view.session_id, Message("assistant", "four"))
    shown, _, _ = logic.visible_history(fake_ctx, view)
    basic = ["edit", "copy", "hide", "branch", "delete"]
    for seq, message in enumerate(shown[:3]):
        assert actions(message["content"]) == [(name, str(seq)) for name in basic]
    assert actions(shown[3]["content"]) == [(name, "3") for name in [*basic, "swipe-left", "swipe-right"]]
    assert '<span class="hearth-swipes">1/1</span>' in shown[3]["content"]
    chat_actions.delete_message(fake_ctx, view.session_id, 3)
    shown, _, _ = logic.visible_history(fake_ctx, view)
    assert "act-swipe-right" not in shown[2]["content"]  # the latest is the user's now
    chat_actions.delete_message(fake_ctx, view.session_id, 2)
    latest = logic.visible_history(fake_ctx, view)[0][1]["content"]
    assert '<span class="hearth-swipes">2/2</span>' in latest and "act-swipe-left seq-1" in latest
    chat_actions.toggle_hidden(fake_ctx, view.session_id, 0)
    assert ">Unhide</span>" in logic.visible_history(fake_ctx, view)[0][0]["content"]


def test_the_live_reply_is_framed_by_its_speaker() -> None:
    frame = bubbles.live(bubbles.Speaker("Luna"))
    assert frame("<p>Hi</p>").endswith(
        '<span class="hearth-name">Luna</span></div><div class="hearth-text"><p>Hi</p></div>'
    )
    assert "hearth-act" not in frame("<p>Hi</p>")


# -- sending while a reply is written ---------------------------------------------------------------


def test_a_message_sent_while_a_reply_is_written_is_refused(fake_ctx: AppContext) -> None:
    backend = GatedBackend()
    fake_ctx.models.attach(backend)
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "first", SETTINGS)
    run = chat_reply.start(fake_ctx, view, "me")
    with pytest.raises(ChatBusyError, match="still writing"):
        logic.send(fake_ctx, view, "second", SETTINGS)
    other = logic.send(fake_ctx, logic.new_chat(fake_ctx), "another chat is free", SETTINGS)
    backend.gate.set()
    run.wait(10)
    assert texts(fake_ctx, view) == [("user", "first"), ("assistant", "This is a fake reply.")]
    logic.send(fake_ctx, view, "second", SETTINGS)  # free again once the reply is in
    assert texts(fake_ctx, view)[-1] == ("user", "second")
    assert texts(fake_ctx, other) == [("user", "another chat is free")]


def test_a_reply_goes_right_after_the_message_it_answers(fake_ctx: AppContext) -> None:
    backend = GatedBackend()
    fake_ctx.models.attach(backend)
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "first", SETTINGS)
    run = chat_reply.start(fake_ctx, view, "me")
    # Something that does not go through `send` (another program, an old window) adds one.
    fake_ctx.store.sessions.append(view.session_id, Message("user", "late"))
    backend.gate.set()
    run.wait(10)
    assert texts(fake_ctx, view) == [
        ("user", "first"),
        ("assistant", "This is a fake reply."),
        ("user", "late"),
    ]


def test_stopping_frees_the_chat(fake_ctx: AppContext) -> None:
    backend = GatedBackend()
    fake_ctx.models.attach(backend)
    view = logic.send(fake_ctx, logic.new_chat(fake_ctx), "first", SETTINGS)
    chat_reply.start(fake_ctx, view, "me")
    assert fake_ctx.busy_chats.busy(view.session_id)
    backend.gate.set()
    fake_ctx.models.stop_and_wait("me")
    assert not fake_ctx.busy_chats.busy(view.session_id)
    logic.send(fake_ctx, view, "second", SETTINGS)


# -- undo ---------------------------------------------------------------------------------------


def test_a_deleted_message_comes_back_where_it_was(fake_ctx: AppContext) -> None:
    view = logic.new_chat(fake_ctx)
    for text in ("a", "b", "c"):
        fake_ctx.store.sessions.append(view.session_id, Message("user", text, meta={"k": text}))
    gone = chat_actions.delete_message(fake_ctx, view.session_id, 1)
    assert [t for _, t in texts(fake_ctx, view)] == ["a", "c"]
    chat_actions.restore_message(fake_ctx, view.session_id, gone)
    assert fake_ctx.store.sessions.messages(view.session_id) == [
        replace(m, seq=i) for i, m in enumerate(fake_ctx.store.sessions.messages(view.session_id))
    ]
    restored = fake_ctx.store.sessions.message(view.session_id, 1)
    assert (restored.text, restored.meta, restored.created) == ("b", {"k": "b"}, gone.created)
    last = chat_actions.delete_message(fake_ctx, view.session_id, 2)
    chat_actions.delete_message(fake_ctx, view.session_id, 1)
    chat_actions.restore_message(fake_ctx, view.session_id, last)  # the chat is shorter now
    assert [t for _, t in texts(fake_ctx, view)] == ["a", "c"]


# -- the chat list ------------------------------------------------------------------------------


def test_the_chat_list_holds_every_chat_and_names_its_character(fake_ctx: AppContext) -> None:
    luna = character(fake_ctx, "Luna")
    mine = logic.new_chat(fake_ctx)
    hers = logic.new_chat(fake_ctx, character_id=luna)
    labels = dict((value, label) for label, value in logic.session_choices(fake_ctx))
    assert labels[hers.session_id].startswith("Chat with Luna · Luna · ")
    assert labels[mine.session_id].startswith("New chat · Assistant · ")
    fake_ctx.store.characters.delete(luna)
    labels = dict((value, label) for label, value in logic.session_choices(fake_ctx))
    assert " · deleted character · " in labels[hers.session_id]
    shown, _, _ = logic.visible_history(fake_ctx, hers)
    assert names(shown[0]["content"]) == ["Deleted character"]


# -- the system prompt box ------------------------------------------------------------------------


def test_the_box_shows_the_default_system_prompt_and_keeps_following_it(fake_ctx: AppContext) -> None:
    view = logic.new_chat(fake_ctx)
    session = fake_ctx.store.sessions.get(view.session_id)
    primer = logic.active_format(fake_ctx, logic.AUTO_FORMAT).default_system
    assert primer and logic.system_prompt_shown(fake_ctx, session) == primer
    # Sending with the default in the box stores none: it follows the format.
    logic.send(fake_ctx, view, "hi", replace(SETTINGS, system_prompt=primer + "\n"))
    assert fake_ctx.store.sessions.get(view.session_id).system_prompt == ""
    vicuna = fake_ctx.formats["vicuna-1.1"].default_system
    logic.save_settings(fake_ctx, view, replace(SETTINGS, system_prompt=primer, format_choice="vicuna-1.1"))
    session = fake_ctx.store.sessions.get(view.session_id)
    assert session.system_prompt == "" and logic.system_prompt_shown(fake_ctx, session) == vicuna
    # An edited one is the chat's own.
    logic.save_settings(fake_ctx, view, replace(SETTINGS, system_prompt=primer + " Be brief."))
    session = fake_ctx.store.sessions.get(view.session_id)
    assert logic.system_prompt_shown(fake_ctx, session) == session.system_prompt == primer + " Be brief."
    # A character's chat starts from SillyTavern's roleplay line.
    hers = logic.new_chat(fake_ctx, character_id=character(fake_ctx, "Luna"))
    session = fake_ctx.store.sessions.get(hers.session_id)
    assert logic.system_prompt_shown(fake_ctx, session) == ROLEPLAY_SYSTEM and session.system_prompt == ""


# -- the model line ---------------------------------------------------------------------------------


def test_the_model_line_names_the_model_and_says_when_it_is_the_tiny_demo(
    fake_ctx: AppContext, tmp_path: Path
) -> None:
    assert logic.model_note(fake_ctx) == "Model: **fake-model**"
    gguf = tmp_path / "gemma.gguf"
    gguf.write_bytes(b"GGUF")
    bundled = FakeBackend(info=replace(fake_ctx.models.backend.info, path=str(gguf), name="gemma"))
    fake_ctx.models.attach(bundled)
    note = logic.model_note(fake_ctx, bundled=lambda: gguf)
    assert note.startswith("Model: **Gemma 3 270M (bundled)**, a tiny demo model")
    assert logic.model_note(fake_ctx, bundled=lambda: tmp_path / "elsewhere.gguf") == "Model: **gemma**"
    fake_ctx.models.unload()
    assert logic.model_note(fake_ctx).startswith("**No model is loaded.**")


def test_card_names_in_bubbles_are_text(fake_ctx: AppContext) -> None:
    card_id = character(fake_ctx, '"><img src=x onerror=alert(1)>')
    view = logic.new_chat(fake_ctx, character_id=card_id)
    bubble = logic.visible_history(fake_ctx, view)[0][0]["content"]
    assert "<img src=x" not in bubble and "&lt;img src=x onerror=alert(1)&gt;" in bubble
    assert isinstance(fake_ctx.store.characters.get(card_id).card, CharacterCard)
