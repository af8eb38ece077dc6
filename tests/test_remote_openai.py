"""Remote engines over the OpenAI-compatible API.

Most tests talk to a real llama-cpp-python server (`python -m llama_cpp.server`) serving
the tiny GGUF. A small stand-in for llama.cpp's own server covers what that one lacks:
`/props` (context size, chat template), `/tokenize`, an API key, and a stream that goes
silent, which is what Stop must cut while a server evaluates a long prompt.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.errors import RemoteAuthError, RemoteConnectError, RemoteEngineError
from engine.fake import FakeBackend
from engine.llama import LlamaCppBackend
from engine.manager import ModelManager
from engine.prompts.adventure import InputKind
from engine.remote import RemoteSpec, connect, without_credentials
from engine.remote.base import estimate_tokens, server_root
from engine.remote.openai import OpenAIBackend, completion_body
from engine.types import Chunk, Finish, FinishReason, GenerationRequest, LoadOptions
from presets.samplers import SamplerParams
from services.chat import logic
from services.chat import reply as chat_reply
from services.chat.logic import ChatSettings
from services.context import AppContext, Settings, create_context
from services.models import remote as remote_logic
from services.story import adventure as adventure_logic
from services.story import logic as story_logic
from services.story.logic import StoryView
from stand_in import Replies, StandIn
from store.stories import Story

GREEDY = SamplerParams(temperature=0.0, repeat_penalty=1.0, max_new_tokens=24)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def generate(backend: Any, request: GenerationRequest) -> tuple[str, Finish]:
    items = list(backend.generate(request, threading.Event()))
    assert isinstance(items[-1], Finish) and all(isinstance(i, Chunk) for i in items[:-1])
    return "".join(i.text for i in items[:-1]), items[-1]


# -- the real llama-cpp-python server --------------------------------------------------------


@pytest.fixture(scope="module")
def llama_server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's server on the tiny model, for this module."""
    if (
        importlib.util.find_spec("sse_starlette") is None
        or importlib.util.find_spec("starlette_context") is None
    ):
        pytest.fail("llama-cpp-python's server needs its extras: pip install -r requirements-dev.txt")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(tiny_gguf), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--n_ctx", "512", "--n_threads", "1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a start-up guard, not a speed requirement
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama-cpp-python's server did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/models", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def local(tiny_gguf: Path) -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(tiny_gguf, LoadOptions(n_ctx=512, threads=1))
    yield backend
    backend.close()


@pytest.fixture
def remote(llama_server: str) -> Iterator[OpenAIBackend]:
    backend = connect(RemoteSpec("openai", f"{llama_server}/v1", n_ctx=512))
    assert isinstance(backend, OpenAIBackend)
    yield backend
    backend.close()


def test_connect_finds_the_model_and_the_tokenizer(llama_server: str, tiny_gguf: Path) -> None:
    backend = connect(RemoteSpec("openai", llama_server.removeprefix("http://")))
    try:
        assert backend.info.name == "tiny-llama.gguf" and backend.model_id == str(tiny_gguf)
        assert backend.info.remote and backend.info.quant == "remote"
        assert backend.info.path == llama_server
        assert backend.engine == "llama-cpp-python server"
        assert not backend.token_count_is_estimate
        assert backend.can_shift is False
        # This server does not report its context: Hearth guesses, and says so.
        assert (backend.n_ctx, backend.n_ctx_source) == (4096, "a guess: the server does not say")
    finally:
        backend.close()


def test_server_tokens_match_the_local_tokenizer(remote: OpenAIBackend, local: LlamaCppBackend) -> None:
    for text in ["hello world the end", "<s>hi</s> there", "Grüße, 世界!\n\n  spaced", ""]:
        assert remote.tokenize(text) == local.tokenize(text)
        assert remote.count_tokens(text) == len(local.tokenize(text))


def test_context_size_is_learned_when_the_server_refuses_a_prompt(llama_server: str) -> None:
    backend = connect(RemoteSpec("openai", llama_server))
    try:
        too_long = GenerationRequest("hello world " * 300, SamplerParams(max_new_tokens=4))
        with pytest.raises(RemoteEngineError, match="context holds 512 tokens.*send again"):
            list(backend.generate(too_long, threading.Event()))
        assert backend.n_ctx == 512
        assert "did not fit" in backend.n_ctx_source
        assert connect(RemoteSpec("openai", llama_server, n_ctx=300)).n_ctx == 300  # the user's value
    finally:
        backend.close()


def test_streamed_reply_matches_the_same_model_run_locally(
    remote: OpenAIBackend, local: LlamaCppBackend
) -> None:
    request = GenerationRequest("hello world the end hello", GREEDY)
    text, finish = generate(remote, request)
    local_text, local_finish = generate(local, request)
    assert text and text == local_text  # the prompt arrived byte for byte and greedy sampling was kept
    assert finish.reason is local_finish.reason is FinishReason.LENGTH
    assert finish.usage.prompt_tokens == len(local.prompt_tokens(request.prompt))  # BOS included
    assert 0 < finish.usage.completion_tokens <= GREEDY.max_new_tokens


def test_stop_strings_end_the_reply_there(remote: OpenAIBackend) -> None:
    full, _ = generate(remote, GenerationRequest("hello world the end hello", GREEDY))
    stop = full[6:8]
    manager = ModelManager()
    manager.attach(remote)
    run = manager.start(GenerationRequest("hello world the end hello", GREEDY, stop=(stop,)), "me")
    assert run.wait(60).reason is FinishReason.STOP
    assert run.text == full[: full.index(stop)]


def test_stop_mid_stream_ends_the_reply_as_cancelled(remote: OpenAIBackend) -> None:
    cancel = threading.Event()
    chunks: list[str] = []
    finish: Finish | None = None
    long_reply = GenerationRequest("hello", SamplerParams(max_new_tokens=400, seed=3))
    for item in remote.generate(long_reply, cancel):
        if isinstance(item, Finish):
            finish = item
        else:
            chunks.append(item.text)
            cancel.set()  # Stop, right after the first piece arrives
    assert finish is not None and finish.reason is FinishReason.CANCELLED
    assert len(chunks) == 1
    text, after = generate(remote, GenerationRequest("hello world", GREEDY))  # the server is free again
    assert text and after.reason is FinishReason.LENGTH


def test_unreachable_server_is_a_plain_error_and_the_old_model_stays() -> None:
    manager = ModelManager()
    manager.attach(FakeBackend())
    port = free_port()  # nothing listens there
    with pytest.raises(RemoteConnectError, match=rf"Nothing answered at http://127.0.0.1:{port}\. Check"):
        manager.connect_remote(RemoteSpec("openai", f"http://127.0.0.1:{port}/v1"))
    assert manager.info is not None and manager.info.name == "fake-model"


def test_wrong_model_name_lists_what_the_server_offers(llama_server: str, tiny_gguf: Path) -> None:
    with pytest.raises(RemoteConnectError, match=f"no model named gpt-4. It offers: {tiny_gguf}"):
        connect(RemoteSpec("openai", llama_server, model="gpt-4"))


@pytest.mark.parametrize(
    ("typed", "root"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://host:5001/v1/", "http://host:5001"),
        ("https://example.org/proxy/v1/completions", "https://example.org/proxy"),
        ("  http://host:5001/api  ", "http://host:5001"),
    ],
)
def test_server_root_accepts_what_users_paste(typed: str, root: str) -> None:
    assert server_root(typed) == root


@pytest.mark.parametrize("typed", ["", "ftp://host/file", "http://host:port", "http://"])
def test_server_root_refuses_what_is_not_an_address(typed: str) -> None:
    with pytest.raises(RemoteConnectError, match="address"):
        server_root(typed)


def test_spec_keeps_the_key_out_of_its_repr() -> None:
    spec = RemoteSpec("openai", "127.0.0.1:8080", api_key="sk-secret")
    assert "sk-secret" not in repr(spec)


def test_sampler_settings_map_to_request_fields() -> None:
    params = SamplerParams(
        temperature=0.5, top_p=0.9, top_k=20, repeat_penalty=1.2, seed=7, max_new_tokens=64
    )
    body = completion_body("m", GenerationRequest("Hi", params, stop=("\nUser:",)))
    assert body["prompt"] == "Hi" and body["model"] == "m" and body["stream"] is True
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["top_k"]) == (64, 0.5, 0.9, 20)
    assert body["repeat_penalty"] == body["repetition_penalty"] == 1.2
    assert (body["stop"], body["seed"]) == (["\nUser:"], 7)
    assert "seed" not in completion_body("m", GenerationRequest("Hi", SamplerParams()))


def test_chat_reply_end_to_end_through_the_remote_engine(
    llama_server: str, tmp_path: Path, local: LlamaCppBackend
) -> None:
    ctx = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    try:
        info = remote_logic.connect(ctx, RemoteSpec("openai", llama_server, api_key="unused", n_ctx=512))
        assert ctx.models.info == info and ctx.models.backend.n_ctx == 512
        saved = ctx.store.get_setting(remote_logic.SETTING)
        assert saved == {"kind": "openai", "url": llama_server, "model": "", "n_ctx": 512}  # never the key
        assert "tokens counted by the server" in remote_logic.remote_status(ctx)
        settings = ChatSettings(params=GREEDY)
        view = logic.send(ctx, logic.new_chat(ctx, settings), "Hello there", settings)
        run = chat_reply.start(ctx, view, "me")

        async def collect() -> list[str]:
            return [text async for text in chat_reply.stream(run, interval=0.001)]

        streamed = asyncio.run(collect())
        finish = run.wait(60)
        reply = ctx.store.sessions.messages(view.session_id)[-1]
        assert reply.role == "assistant" and reply.text and streamed
        assert reply.meta["model"] == "tiny-llama.gguf" and reply.meta["n_ctx"] == 512
        assert reply.meta["prompt_tokens"] == finish.usage.prompt_tokens
        prompt = chat_reply.build_prompt(ctx, view).request.prompt  # the next turn's prompt holds this reply
        assert prompt.count("Hello there") == 1 and reply.text in prompt
        assert chat_reply.context_status(ctx, view).startswith("Context: ")
    finally:
        ctx.models.unload()
        ctx.store.close()


def test_story_and_adventure_run_and_stop_through_the_remote_engine(
    llama_server: str, tmp_path: Path
) -> None:
    ctx = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    try:
        remote_logic.connect(ctx, RemoteSpec("openai", llama_server, api_key="unused", n_ctx=512))
        story = story_logic.stories(ctx).create(Story().append("The lighthouse keeper", "prompt"))
        view = StoryView(story.id)
        story_logic.start(ctx, view, "story", GREEDY, "me", "generate")[1].wait(60)
        written = story_logic.stories(ctx).get(story.id).story
        assert [c.origin for c in written.chunks] == ["prompt", "ai"] and written.chunks[1].text

        own = adventure_logic.scenario_by_id(adventure_logic.CUSTOM, "${your name} stands at a door.", "")
        begun = adventure_logic.begin(ctx, own, {"your name": "Quill"})
        play = StoryView(begun.id)
        adventure_logic.act(ctx, play, InputKind.DO, "open the door")
        long = replace(GREEDY, max_new_tokens=300)
        run = story_logic.start(ctx, play, "adventure", long, "me", "generate")[1]
        deadline = time.monotonic() + 30
        while not run.text and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ctx.models.stop("me")  # Stop, as the tab's button does
        assert run.wait(60).reason is FinishReason.CANCELLED
        turns = story_logic.stories(ctx).get(begun.id).story.chunks
        assert turns[-2].text.strip() == "> You open the door." and turns[-1].origin == "ai"
    finally:
        ctx.models.unload()
        ctx.store.close()


# -- a stand-in for llama.cpp's server ---------------------------------------------------------

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class FakeLlamaCpp(StandIn):
    """llama.cpp's server as far as Hearth uses it. `/v1/completions` sends one piece and
    then goes silent until the client leaves, unless the prompt is "quick"."""

    def __init__(self, api_key: str = "") -> None:
        self.api_key = api_key
        self.bodies: list[dict[str, Any]] = []
        self.client_left = threading.Event()
        self.meta: Any = {"n_ctx_train": 8192, "size": 123456}
        self.settings: Any = {"n_ctx": 2048}
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(Replies):
            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path == "/v1/models":
                    entry = {"id": "house-model.gguf", "meta": fake.meta}
                    self.send_json({"object": "list", "data": [entry]})
                elif self.path == "/props":
                    settings = fake.settings
                    self.send_json(
                        {"default_generation_settings": settings, "chat_template": CHATML_TEMPLATE}
                    )
                else:
                    self.send_json({"error": {"message": "File Not Found"}}, 404)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self._authorized():
                    return
                if self.path == "/tokenize":
                    self.send_json({"tokens": [ord(c) for c in body["content"]]})
                elif self.path == "/v1/completions":
                    fake.bodies.append(body)
                    self._stream(body["prompt"] == "quick")
                else:
                    self.send_json({"error": {"message": "File Not Found"}}, 404)

            def _authorized(self) -> bool:
                if not fake.api_key or self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                    return True
                self.send_json({"error": {"message": "Invalid API Key", "type": "authentication_error"}}, 401)
                return False

            def _stream(self, quick: bool) -> None:
                self.start_events()
                self.send_event({"choices": [{"text": "Hi", "finish_reason": None}]})
                if quick:
                    usage = {"prompt_tokens": 5, "completion_tokens": 2}
                    last = {"text": "!", "finish_reason": "stop"}
                    self.send_event({"choices": [last], "usage": usage, "timings": {"prompt_n": 1}})
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                readable, _, _ = select.select([self.connection], [], [], 30)
                if readable and self.connection.recv(1) == b"":
                    fake.client_left.set()

        return Handler


@pytest.fixture
def llama_cpp() -> Iterator[FakeLlamaCpp]:
    fake = FakeLlamaCpp()
    yield fake
    fake.stop()


def test_llama_cpp_server_reports_context_template_and_usage(llama_cpp: FakeLlamaCpp, tmp_path: Path) -> None:
    backend = connect(RemoteSpec("openai", llama_cpp.url))
    try:
        assert backend.engine == "llama.cpp server"
        assert (backend.n_ctx, backend.n_ctx_source) == (2048, "reported by the server")
        assert backend.info.context_length == 8192 and backend.info.file_size == 123456
        assert backend.tokenize("abc") == [97, 98, 99]  # /tokenize adds no BOS: nothing is cut
        text, finish = generate(backend, GenerationRequest("quick"))
        assert (text, finish.reason) == ("Hi!", FinishReason.STOP)
        # The server's usage wins; its timings say 1 prompt token was evaluated, so 4 came from its cache.
        assert (finish.usage.prompt_tokens, finish.usage.completion_tokens) == (5, 2)
        assert (finish.usage.prompt_evaluated, finish.usage.prompt_reused) == (1, 4)
        assert connect(RemoteSpec("openai", llama_cpp.url, n_ctx=99999)).n_ctx == 2048  # cannot exceed it
    finally:
        backend.close()
    ctx = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    try:
        remote_logic.connect(ctx, RemoteSpec("openai", llama_cpp.url))
        assert ctx.detected_format().format.id == "chatml"  # from the server's chat template
    finally:
        ctx.models.unload()
        ctx.store.close()


@pytest.mark.parametrize(
    "value", ["4096", "abc", 4096.5, True, -1, 0, 10**30, [4096], {"n": 1}, None, float("nan")]
)
def test_hostile_server_metadata_is_ignored_not_fatal(llama_cpp: FakeLlamaCpp, value: Any) -> None:
    """Counts a server sends as the wrong type or size fall back to defaults."""
    llama_cpp.meta = {"n_ctx_train": value, "size": value}
    llama_cpp.settings = {"n_ctx": value}
    backend = connect(RemoteSpec("openai", llama_cpp.url, n_ctx=1024))
    try:
        assert (backend.n_ctx, backend.n_ctx_source) == (1024, "as you set it")
        assert backend.info.context_length == 1024 and backend.info.file_size == 0
    finally:
        backend.close()


def test_stop_cuts_a_silent_stream_and_the_server_sees_the_client_leave(llama_cpp: FakeLlamaCpp) -> None:
    manager = ModelManager()
    manager.connect_remote(RemoteSpec("openai", llama_cpp.url))
    run = manager.start(GenerationRequest("a long prompt the server is still reading"), "me")
    deadline = time.monotonic() + 30
    while run.text != "Hi" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run.text == "Hi" and not run.done  # the server has gone quiet mid-reply
    assert manager.stop("me")
    assert run.wait(30).reason is FinishReason.CANCELLED
    assert run.text == "Hi"
    assert llama_cpp.client_left.wait(30)
    manager.unload()


def test_api_key_is_sent_and_a_wrong_one_is_a_plain_error() -> None:
    fake = FakeLlamaCpp(api_key="sk-right")
    try:
        with pytest.raises(
            RemoteAuthError, match=r"refused the request \(HTTP 401\).*API key.*Invalid API Key"
        ):
            connect(RemoteSpec("openai", fake.url, api_key="sk-wrong"))
        backend = connect(RemoteSpec("openai", fake.url, api_key="sk-right"))
        assert generate(backend, GenerationRequest("quick"))[0] == "Hi!"
        backend.close()
    finally:
        fake.stop()


def test_a_server_without_tokenizer_gets_estimates(
    llama_cpp: FakeLlamaCpp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engine.remote.openai._tokenizers", lambda _model: [])
    backend = connect(RemoteSpec("openai", llama_cpp.url))
    try:
        assert backend.token_count_is_estimate
        assert remote_logic.estimate_note(backend) == " (estimated)"
        assert backend.count_tokens("Hello there, friend") == estimate_tokens("Hello there, friend") == 6
        assert estimate_tokens("Grüße aus dem Wald") == 7  # 16 ASCII bytes / 3.5 + 4 other bytes / 2
        assert estimate_tokens("世界") == 3  # 6 bytes / 2: more than any tokenizer's one or two
    finally:
        backend.close()


def test_context_line_helper_is_silent_for_exact_counts(fake_ctx: AppContext) -> None:
    assert remote_logic.estimate_note(fake_ctx.models.backend) == ""
    assert remote_logic.remote_status(fake_ctx) == ""


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("http://ada:secret@gpu-box:8080/v1", "http://gpu-box:8080/v1"),
        ("ada:secret@gpu-box:5001", "gpu-box:5001"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_an_address_is_shown_and_saved_without_its_password(typed: str, kept: str) -> None:
    assert without_credentials(typed) == kept
    assert "secret" not in RemoteSpec("openai", typed).shown_url
