"""Remote engines over the KoboldAI API, against a stand-in KoboldCpp on 127.0.0.1.

The stand-in answers the endpoints Hearth uses with the shapes KoboldCpp sends
(`/api/v1/model`, the context sizes, `/api/extra/version`, `tokencount` with a BOS,
the `event: message` stream, `/api/v1/generate` and `abort` by genkey). With
`koboldcpp=False` it is KoboldAI United: no `/api/extra/*`, replies only whole.
"""

from __future__ import annotations

import json
import re
import select
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from engine.errors import RemoteAuthError, RemoteConnectError
from engine.manager import ModelManager
from engine.remote import RemoteSpec, connect
from engine.remote.base import estimate_tokens
from engine.remote.kobold import KoboldBackend
from engine.run import Run
from engine.types import Chunk, Finish, FinishReason, GenerationRequest
from presets.samplers import SamplerParams
from services.chat import logic
from services.chat import reply as chat_reply
from services.chat.logic import ChatSettings
from services.context import AppContext, Settings, create_context
from services.models import remote as remote_logic
from services.story import logic as story_logic
from services.story.logic import StoryView
from stand_in import Replies, StandIn
from store.stories import Story
from ui.models import remote as models_remote

REPLY = ("Once", " upon", " a", " time", ".")
_PIECE = re.compile(r"\s*\S+|\s+")


def token_ids(text: str) -> list[int]:
    """The stand-in's tokenizer: words with their leading space, after a BOS (id 1)."""
    return [1] + [zlib.crc32(piece.encode()) % 30000 for piece in _PIECE.findall(text)]


class FakeKobold(StandIn):
    """KoboldCpp (or KoboldAI United) with a canned reply. With `hold`, a generation
    sends its first piece and then waits until it is aborted or its client leaves."""

    def __init__(self, *, koboldcpp: bool = True, password: str = "", reply: tuple[str, ...] = REPLY) -> None:
        self.koboldcpp = koboldcpp
        self.password = password
        self.reply = reply
        self.hold = False
        self.bodies: list[dict[str, Any]] = []
        self.aborted: list[str] = []
        self.abort = threading.Event()
        self.client_left = threading.Event()
        super().__init__(self._handler())

    def stop(self) -> None:
        self.abort.set()  # release a held generation
        super().stop()

    def pieces(self, body: dict[str, Any]) -> tuple[list[str], str]:
        """The reply up to and including a stop sequence (KoboldCpp keeps it), and why it ended."""
        text = ""
        for index, piece in enumerate(self.reply):
            text += piece
            if any(stop in text for stop in body.get("stop_sequence", [])):
                return list(self.reply[: index + 1]), "stop"
        return list(self.reply), "length"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(Replies):
            def do_GET(self) -> None:
                extra = {
                    "/api/extra/version": {"result": "KoboldCpp", "version": "1.99.1"},
                    "/api/extra/true_max_context_length": {"value": 8192},
                }
                if self.path == "/api/v1/model":
                    name = "koboldcpp/Tiefighter-13B" if self._authorized() else "koboldcpp/protected-model"
                    self.send_json({"result": name if fake.koboldcpp else "KoboldAI/Tiefighter-13B"})
                elif self.path == "/api/v1/config/max_context_length":
                    self.send_json({"value": 2048})
                elif fake.koboldcpp and self.path in extra:
                    self.send_json(extra[self.path])
                else:
                    self.send_json({"detail": "Not Found"}, 404)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self._authorized():
                    self.send_json(
                        {"detail": {"msg": "Authentication key is missing or invalid.", "type": "unauth"}},
                        401,
                    )
                elif self.path == "/api/v1/generate":
                    fake.bodies.append(body)
                    self._generate(body)
                elif not fake.koboldcpp:
                    self.send_json({"detail": "Not Found"}, 404)
                elif self.path == "/api/extra/tokencount":
                    ids = token_ids(body["prompt"])
                    self.send_json({"value": len(ids), "ids": ids})
                elif self.path == "/api/extra/generate/stream":
                    fake.bodies.append(body)
                    self._stream(body)
                elif self.path == "/api/extra/abort":
                    fake.aborted.append(body.get("genkey", ""))
                    fake.abort.set()
                    self.send_json({"success": "true", "done": "true"})
                else:
                    self.send_json({"detail": "Not Found"}, 404)

            def _authorized(self) -> bool:
                return not fake.password or self.headers.get("Authorization") == f"Bearer {fake.password}"

            def _generate(self, body: dict[str, Any]) -> None:
                pieces, reason = fake.pieces(body)
                if fake.hold and not fake.abort.wait(30):
                    return
                pieces = pieces[:1] if fake.hold else pieces
                result = {"text": "".join(pieces)}
                self.send_json(
                    {"results": [{**result, "finish_reason": reason} if fake.koboldcpp else result]}
                )

            def _stream(self, body: dict[str, Any]) -> None:
                self.start_events()
                pieces, reason = fake.pieces(body)
                for piece in pieces:
                    self._event({"token": piece, "finish_reason": "null"})
                    if fake.hold:
                        self._wait_for_stop()
                        return
                self._event({"token": "", "finish_reason": reason})

            def _wait_for_stop(self) -> None:
                readable, _, _ = select.select([self.connection], [], [], 30)
                if readable and self.connection.recv(1) == b"":
                    fake.client_left.set()

            def _event(self, data: Any) -> None:
                self.wfile.write(f"event: message\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

        return Handler


@pytest.fixture
def kobold() -> Iterator[FakeKobold]:
    fake = FakeKobold()
    yield fake
    fake.stop()


@pytest.fixture
def united() -> Iterator[FakeKobold]:
    fake = FakeKobold(koboldcpp=False)
    yield fake
    fake.stop()


def generate(backend: Any, request: GenerationRequest) -> tuple[list[str], Finish]:
    items = list(backend.generate(request, threading.Event()))
    assert isinstance(items[-1], Finish)
    return [i.text for i in items if isinstance(i, Chunk)], items[-1]


def wait_for_text(run: Run, text: str) -> None:
    deadline = time.monotonic() + 30
    while run.text != text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run.text == text and not run.done


def test_connect_to_koboldcpp(kobold: FakeKobold) -> None:
    backend = connect(RemoteSpec("kobold", f"{kobold.url}/api/v1"))
    try:
        assert isinstance(backend, KoboldBackend) and backend.streams
        assert (backend.info.name, backend.engine) == ("Tiefighter-13B", "KoboldCpp 1.99.1")
        assert backend.info.remote and backend.info.path == kobold.url
        assert (backend.n_ctx, backend.n_ctx_source) == (8192, "reported by the server")  # the true maximum
        assert not backend.token_count_is_estimate
        assert backend.tokenize("hello world") == token_ids("hello world")[1:]  # the BOS is cut
        assert backend.count_tokens("hello world") == 2
    finally:
        backend.close()


def test_streamed_reply_and_the_request_it_sent(kobold: FakeKobold) -> None:
    backend = connect(RemoteSpec("kobold", kobold.url, n_ctx=4096))
    try:
        params = SamplerParams(
            temperature=0.7, top_p=0.9, top_k=30, min_p=0.1, typical_p=0.95, repeat_penalty=1.15,
            repeat_last_n=256, seed=42, max_new_tokens=80,
        )  # fmt: skip
        chunks, finish = generate(backend, GenerationRequest("The tale", params, stop=("\nYou:",)))
        assert chunks == list(REPLY) and finish.reason is FinishReason.LENGTH
        assert finish.usage.prompt_tokens == len(token_ids("The tale"))  # with the BOS the server adds
        assert finish.usage.completion_tokens == len(token_ids("".join(REPLY))) - 1
        sent = kobold.bodies[-1]
        assert sent["prompt"] == "The tale" and sent["stop_sequence"] == ["\nYou:"]
        assert (sent["max_length"], sent["max_context_length"]) == (80, 4096)
        assert (sent["temperature"], sent["top_p"], sent["top_k"], sent["min_p"]) == (0.7, 0.9, 30, 0.1)
        assert (sent["typical"], sent["rep_pen"], sent["rep_pen_range"]) == (0.95, 1.15, 256)
        assert sent["sampler_seed"] == 42 and sent["genkey"].startswith("HEARTH")
    finally:
        backend.close()


def test_stop_aborts_this_generation_and_closes_the_stream(kobold: FakeKobold) -> None:
    kobold.hold = True
    manager = ModelManager()
    manager.connect_remote(RemoteSpec("kobold", kobold.url))
    run = manager.start(GenerationRequest("The tale"), "me")
    wait_for_text(run, "Once")
    assert manager.stop("me")
    assert run.wait(30).reason is FinishReason.CANCELLED and run.text == "Once"
    assert kobold.aborted == [kobold.bodies[-1]["genkey"]]  # only this generation is aborted
    assert kobold.client_left.wait(30)
    manager.unload()


def test_stop_strings_end_the_reply(kobold: FakeKobold) -> None:
    kobold.reply = ("Sure", ".", "\nUser", ":", " more")
    manager = ModelManager()
    manager.connect_remote(RemoteSpec("kobold", kobold.url))
    run = manager.start(GenerationRequest("Hi", stop=("\nUser:",)), "me")
    assert run.wait(30).reason is FinishReason.STOP
    assert run.text == "Sure."
    manager.unload()


def test_koboldai_united_replies_whole_and_estimates_tokens(united: FakeKobold) -> None:
    backend = connect(RemoteSpec("kobold", united.url))
    try:
        assert not backend.streams and backend.engine == "KoboldAI"
        assert backend.info.name == "KoboldAI/Tiefighter-13B"
        assert (backend.n_ctx, backend.n_ctx_source) == (2048, "reported by the server")
        assert backend.token_count_is_estimate and remote_logic.estimate_note(backend) == " (estimated)"
        assert backend.count_tokens("The tale") == estimate_tokens("The tale") == 3
        chunks, finish = generate(backend, GenerationRequest("The tale"))
        assert chunks == ["Once upon a time."] and finish.reason is FinishReason.STOP
        assert finish.usage.completion_tokens == estimate_tokens("Once upon a time.")
    finally:
        backend.close()


def test_stop_while_united_is_busy_ends_at_once(united: FakeKobold) -> None:
    united.hold = True
    backend = connect(RemoteSpec("kobold", united.url))
    cancel = threading.Event()
    items: list[Chunk | Finish] = []
    worker = threading.Thread(target=lambda: items.extend(backend.generate(GenerationRequest("Hi"), cancel)))
    worker.start()
    deadline = time.monotonic() + 30
    while not united.bodies and time.monotonic() < deadline:
        time.sleep(0.01)
    cancel.set()
    worker.join(30)
    assert not worker.is_alive()
    assert items and isinstance(items[-1], Finish) and items[-1].reason is FinishReason.CANCELLED
    backend.close()


def test_password_protected_koboldcpp() -> None:
    fake = FakeKobold(password="hunter2")
    try:
        with pytest.raises(RemoteAuthError, match="wants its password: type it as the API key"):
            connect(RemoteSpec("kobold", fake.url))
        backend = connect(RemoteSpec("kobold", fake.url, api_key="hunter2"))
        assert backend.info.name == "Tiefighter-13B" and not backend.token_count_is_estimate
        backend.close()
    finally:
        fake.stop()


def test_the_wrong_kind_of_server_is_named_plainly(kobold: FakeKobold) -> None:
    with pytest.raises(RemoteConnectError, match="has no /v1/models .*speaks the OpenAI-compatible API"):
        connect(RemoteSpec("openai", kobold.url))


def test_chat_and_story_work_through_koboldcpp(kobold: FakeKobold, tmp_path: Path) -> None:
    ctx = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    try:
        remote_logic.connect(ctx, RemoteSpec("kobold", kobold.url, n_ctx=2048))
        assert "KoboldCpp 1.99.1" in remote_logic.remote_status(ctx)
        settings = ChatSettings(params=SamplerParams(max_new_tokens=32))
        view = logic.send(ctx, logic.new_chat(ctx, settings), "Tell me a story", settings)
        chat_reply.start(ctx, view, "me").wait(30)
        reply = ctx.store.sessions.messages(view.session_id)[-1]
        assert (reply.role, reply.text, reply.meta["model"]) == (
            "assistant",
            "Once upon a time.",
            "Tiefighter-13B",
        )
        assert kobold.bodies[-1]["prompt"].endswith("Tell me a story\nAssistant:")
        story_view = StoryView(
            story_logic.stories(ctx).create(Story().append("The castle gate", "prompt")).id
        )
        _view, run = story_logic.start(
            ctx, story_view, "story", SamplerParams(max_new_tokens=32), "me", "generate"
        )
        run.wait(30)
        told = story_logic.stories(ctx).get(story_view.story_id or "").story.full_text()
        assert told.startswith("The castle gate") and told.endswith("Once upon a time.")
    finally:
        ctx.models.unload()
        ctx.store.close()


def test_remembered_engine_fills_the_form(fake_ctx: AppContext) -> None:
    assert remote_logic.saved_remote(fake_ctx) == {"kind": "openai", "url": "", "model": "", "n_ctx": 0}
    fake_ctx.store.set_setting(remote_logic.SETTING, {"kind": "kobold", "url": "h:5001", "n_ctx": "big"})
    assert remote_logic.saved_remote(fake_ctx) == {
        "kind": "kobold",
        "url": "h:5001",
        "model": "",
        "n_ctx": 0,
    }


def test_models_tab_section_connects_and_reports_errors_plainly(kobold: FakeKobold, tmp_path: Path) -> None:
    ctx = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    remembered = {"kind": "kobold", "url": kobold.url, "model": "", "n_ctx": 0}
    ctx.store.set_setting(remote_logic.SETTING, remembered)
    try:
        with gr.Blocks() as demo:
            facts = gr.Markdown()
            widgets = models_remote.layout(ctx)
            models_remote.wire(widgets, ctx, facts)
        assert (widgets.kind.value, widgets.url.value) == ("kobold", kobold.url)  # the form remembers
        on_connect = next(f.fn for f in demo.fns.values() if f.api_name == "connect_remote")
        with pytest.raises(gr.Error, match="is not a server address"):
            on_connect("kobold", "ftp://nowhere", "", "", 0)
        shown, status = on_connect("kobold", kobold.url, "", "", 0)
        assert "Tiefighter-13B (remote)" in shown and "| Token counts | from the server |" in shown
        assert status.startswith("Connected to **Tiefighter-13B** on KoboldCpp 1.99.1")
        assert "8,192 tokens (reported by the server) · tokens counted by the server" in status
    finally:
        ctx.models.unload()
        ctx.store.close()
