"""The OpenAI-compatible API, called with the real `openai` client over real HTTP.

Each test serves the API on a free loopback port (`serve_in_thread`, as `--api-port`
does) over a fake-backed app context, so the prompt the model received, the order of
runs and the cancel of a run can all be checked exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest

import app
from api.deps import ApiSettings
from api.errors import ApiServerError
from api.server import create_api_app, root_app, serve_in_thread
from catalog.detect import FormatDetection
from engine.fake import FakeBackend
from engine.types import Finish, FinishReason, GenerationRequest
from presets.samplers import SamplerParams
from services.context import AppContext


class RecordingBackend(FakeBackend):
    """A fake that notes when each generation starts and ends, and how it ended.

    With `hold` set, it pauses after its first chunk until `hold` is set or the run
    is cancelled, so tests see a run mid-way whatever the machine's speed.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.events: list[tuple[str, str]] = []
        self.ended = threading.Event()
        self.hold: threading.Event | None = None

    def generate(self, request, cancel):  # type: ignore[no-untyped-def]
        self.events.append(("start", request.prompt))
        for index, item in enumerate(super().generate(request, cancel)):
            if isinstance(item, Finish):  # noted before the yield: the run closes us right after it
                self.events.append((item.reason.value, request.prompt))
                self.ended.set()
            yield item
            if index == 0 and self.hold is not None:
                for _ in range(1000):  # at most ten seconds
                    if self.hold.is_set() or cancel.is_set():
                        break
                    time.sleep(0.01)


@pytest.fixture
def fake_backend() -> RecordingBackend:
    return RecordingBackend(n_ctx=2048)


@contextmanager
def serving(ctx: AppContext, settings: ApiSettings | None = None) -> Iterator[str]:
    api_app = create_api_app(app.api_deps(ctx), settings or ApiSettings(), host="127.0.0.1")
    server = serve_in_thread(root_app(api_app), "127.0.0.1", 0)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def url(fake_ctx: AppContext) -> Iterator[str]:
    with serving(fake_ctx) as base:
        yield base


def client(base: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)


def use_format(ctx: AppContext, format_id: str) -> None:
    ctx.model_format = FormatDetection(format_id, ctx.formats[format_id], "test")


# -- models and completions ------------------------------------------------------------


def test_models_lists_the_loaded_model(url: str, fake_ctx: AppContext) -> None:
    assert [m.id for m in client(url).models.list()] == ["fake-model"]
    fake_ctx.models.unload()
    assert list(client(url).models.list()) == []


def test_completion_continues_the_raw_prompt(url: str, fake_backend: RecordingBackend) -> None:
    fake_backend.enqueue(["Hello", " world", "."])
    reply = client(url).completions.create(model="anything", prompt="Say hi:", max_tokens=10, seed=7)
    choice = reply.choices[0]
    assert (choice.text, choice.finish_reason, reply.model) == ("Hello world.", "stop", "fake-model")
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    sent = fake_backend.calls[-1]
    assert (sent.prompt, sent.stop, sent.params.max_new_tokens, sent.params.seed) == ("Say hi:", (), 10, 7)
    prompt_tokens = len(fake_backend.tokenize("Say hi:"))
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt_tokens, 3)
    assert reply.usage.total_tokens == prompt_tokens + 3


def test_completion_streams_chunks_then_done(url: str, fake_backend: RecordingBackend) -> None:
    fake_backend.enqueue(["Once", " upon", " a", " time"])
    stream = client(url).completions.create(
        model="m", prompt="Tell me", max_tokens=20, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(texts) == "Once upon a time"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


def test_max_tokens_ends_with_length(url: str, fake_backend: RecordingBackend) -> None:
    fake_backend.enqueue(["a", " b", " c", " d", " e"])
    reply = client(url).completions.create(model="m", prompt="Count", max_tokens=2)
    assert (reply.choices[0].text, reply.choices[0].finish_reason) == ("a b", "length")
    assert reply.usage is not None and reply.usage.completion_tokens == 2


def test_sampler_fields_reach_the_run(url: str, fake_backend: RecordingBackend) -> None:
    client(url).completions.create(
        model="m",
        prompt="x",
        temperature=0.3,
        top_p=0.5,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        extra_body={"top_k": 7, "min_p": 0.2, "repeat_penalty": 1.3},
    )
    params = fake_backend.calls[-1].params
    assert (params.temperature, params.top_p, params.top_k, params.min_p) == (0.3, 0.5, 7, 0.2)
    assert (params.repeat_penalty, params.presence_penalty, params.frequency_penalty) == (1.3, 0.5, -0.5)


@pytest.mark.parametrize("stop", ["STOP", ["never", "STOP"]])
def test_stop_strings_cut_the_reply(url: str, fake_backend: RecordingBackend, stop: str | list[str]) -> None:
    fake_backend.enqueue(["one", " two", " ST", "OP", " three"])
    reply = client(url).completions.create(model="m", prompt="Go", stop=stop)
    assert (reply.choices[0].text, reply.choices[0].finish_reason) == ("one two ", "stop")


# -- chat ------------------------------------------------------------------------------


def test_chat_renders_the_messages_in_the_detected_format(
    url: str, fake_ctx: AppContext, fake_backend: RecordingBackend
) -> None:
    use_format(fake_ctx, "chatml")
    fake_backend.enqueue(["\n", "Fine", ",", " thanks", ".", "\n "])
    reply = client(url).chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "How are you?"}]},
        ],
        stop="END",
    )
    sent = fake_backend.calls[-1]
    assert sent.prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert sent.stop == ("<|im_end|>", "<|im_start|>", "END")
    message = reply.choices[0].message
    assert (message.role, message.content, reply.choices[0].finish_reason) == (
        "assistant",
        "Fine, thanks.",
        "stop",
    )
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")


def test_chat_in_a_folding_format_with_a_later_system_message(
    url: str, fake_ctx: AppContext, fake_backend: RecordingBackend
) -> None:
    use_format(fake_ctx, "llama-2-chat")
    client(url).chat.completions.create(
        model="m",
        messages=[
            {"role": "developer", "content": "Be kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Bye"},
        ],
    )
    assert fake_backend.calls[-1].prompt == (
        "[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>"
        "[INST] Answer in French. [/INST][INST] Bye [/INST]"
    )


def test_chat_without_a_system_message_uses_the_formats_default(
    url: str, fake_ctx: AppContext, fake_backend: RecordingBackend
) -> None:
    client(url).chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    plain = fake_ctx.formats["plain"]
    sent = fake_backend.calls[-1]
    expected_head = plain.default_system.replace("{{user}}", "User").replace("{{char}}", "Assistant")
    assert sent.prompt == expected_head + "\n\nUser: Hi\nAssistant:"
    assert sent.stop == ("\nUser:",)


def test_the_formats_stop_strings_end_a_chat_reply(
    url: str, fake_ctx: AppContext, fake_backend: RecordingBackend
) -> None:
    use_format(fake_ctx, "chatml")
    fake_backend.enqueue(["Sure", ".", "<|im_end|>", "\n<|im_start|>user\nmore"])
    reply = client(url).chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == ("Sure.", "stop")


def test_chat_streams_deltas_trimmed_like_the_whole_reply(url: str, fake_backend: RecordingBackend) -> None:
    fake_backend.enqueue([" ", " Hi", " there", ".", " \n"])
    chunks = list(
        client(url).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=50, stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hi there."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_a_thinking_reply_comes_as_reasoning_content_apart_from_the_answer(
    url: str, fake_backend: RecordingBackend
) -> None:
    """As llama.cpp's server answers: what the model thought is `reasoning_content`, and
    a reply sent back with its thinking goes into the prompt without it."""
    thought = ["<th", "ink>", "\nThey", " greet", " me.", "\n</th", "ink>", "\n\n", "Hello", "!"]
    fake_backend.enqueue(thought)
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>an earlier plan</think>Hey."},
        {"role": "user", "content": "Hi again"},
    ]
    chunks = list(
        client(url).chat.completions.create(model="m", messages=history, max_tokens=50, stream=True)  # type: ignore[arg-type]
    )
    reasoning = "".join(
        getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices
    )
    assert reasoning == "\nThey greet me.\n"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    assert "an earlier plan" not in fake_backend.calls[-1].prompt and "Hey." in fake_backend.calls[-1].prompt

    fake_backend.enqueue(thought)
    reply = client(url).chat.completions.create(model="m", messages=history[:1], max_tokens=50)
    assert reply.choices[0].message.content == "Hello!"
    assert getattr(reply.choices[0].message, "reasoning_content", None) == "They greet me."


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, param",
    [
        ({"messages": [], "model": "m"}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 9}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 9}, "n"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
    ],
)
def test_bad_fields_get_400_in_openais_shape(url: str, body: dict[str, object], param: str) -> None:
    response = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


def test_the_openai_client_sees_a_bad_request(url: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(url).completions.create(model="m", prompt="x", temperature=7)
    assert caught.value.status_code == 400
    assert "Temperature must be between 0 and 5" in caught.value.message


def test_a_body_that_is_not_json_gets_400(url: str) -> None:
    plain = httpx.post(
        f"{url}/v1/completions", content=b'{"prompt": "x"}', headers={"Content-Type": "text/plain"}
    )
    broken = httpx.post(
        f"{url}/v1/completions", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert (plain.status_code, broken.status_code) == (400, 400)
    assert "Content-Type: application/json" in plain.json()["error"]["message"]


def test_a_body_over_the_limit_gets_400_even_when_chunked(
    url: str, monkeypatch: pytest.MonkeyPatch, fake_backend: RecordingBackend
) -> None:
    monkeypatch.setattr("api.routes.MAX_BODY_BYTES", 1000)
    body = b'{"prompt": "' + b"x" * 2000 + b'"}'

    def chunked() -> Iterator[bytes]:  # a generator body is sent without a Content-Length
        yield from (body[i : i + 100] for i in range(0, len(body), 100))

    headers = {"Content-Type": "application/json"}
    for content in (body, chunked()):
        reply = httpx.post(f"{url}/v1/completions", content=content, headers=headers)
        assert reply.status_code == 400 and "larger than" in reply.json()["error"]["message"]
    assert not fake_backend.events  # nothing was generated


def test_no_model_loaded_is_503(url: str, fake_ctx: AppContext) -> None:
    fake_ctx.models.unload()
    with pytest.raises(openai.InternalServerError) as caught:
        client(url).completions.create(model="m", prompt="x")
    assert caught.value.status_code == 503
    assert "No model is loaded" in caught.value.message


def test_context_overflow_is_400_with_the_plain_message(url: str) -> None:
    long_prompt = "word " * 3000  # the fake's context holds 2048 tokens
    with pytest.raises(openai.BadRequestError) as completion:
        client(url).completions.create(model="m", prompt=long_prompt, max_tokens=16)
    assert "shorten the prompt" in completion.value.message
    assert completion.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as chat:
        client(url).chat.completions.create(model="m", messages=[{"role": "user", "content": long_prompt}])
    assert "fit" in chat.value.message and "Traceback" not in chat.value.message


def test_a_failing_model_is_a_500_without_a_traceback(url: str, fake_backend: RecordingBackend) -> None:
    def broken(request, cancel):  # type: ignore[no-untyped-def]
        raise RuntimeError("the GPU caught fire")
        yield  # a generator, like the real one

    fake_backend.generate = broken  # type: ignore[method-assign]
    response = httpx.post(f"{url}/v1/completions", json={"prompt": "x"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert "the GPU caught fire" in error["message"] and "Traceback" not in response.text


# -- security --------------------------------------------------------------------------


def test_a_key_is_required_when_set(fake_ctx: AppContext) -> None:
    with serving(fake_ctx, ApiSettings(key="s3cret")) as base:
        for path in ("/v1/models", "/v1/nowhere"):
            response = httpx.get(base + path)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError) as caught:
            client(base, key="wrong").completions.create(model="m", prompt="x")
        assert caught.value.status_code == 401
        assert [m.id for m in client(base, key="s3cret").models.list()] == ["fake-model"]


def test_listening_beyond_loopback_needs_a_key_or_a_login(
    fake_ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(app.API_KEY_ENV, raising=False)
    with pytest.raises(ApiServerError):
        create_api_app(app.api_deps(fake_ctx), ApiSettings(), host="0.0.0.0")
    # --listen needs --auth, and --auth covers the API when it has no key of its own.
    _, api = app.parse_flags(["--listen", "--auth", "me:pw", "--api"])
    assert api == ApiSettings(logins=(("me", "pw"),))
    create_api_app(app.api_deps(fake_ctx), api, host="0.0.0.0")
    _, api = app.parse_flags(["--listen", "--auth", "me:pw", "--api", "--api-key", "k"])
    assert api == ApiSettings(key="k")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--api-key", "k"], "--api-key only applies to the API: add --api"),
        (["--api-port", "9000"], "--api-port only applies to the API"),
        (["--api-cors-origin", "http://a.example"], "--api-cors-origin only applies to the API"),
        (["--api", "--api-port", "7860"], "--api-port must be a port number other than --port"),
        (["--api", "--api-cors-origin", "*"], "must be an origin like http://localhost:3000"),
        (["--api", "--api-key", "two words"], "--api-key must be non-empty and without spaces"),
    ],
)
def test_bad_api_flags_refuse_to_start(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        app.parse_flags(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_api_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(app.API_KEY_ENV, raising=False)
    assert app.parse_flags([])[1] is None
    assert app.parse_flags(["--api"])[1] == ApiSettings()
    _, api = app.parse_flags(
        [
            "--api",
            "--api-port",
            "8000",
            "--api-cors-origin",
            "http://a.example",
            "--api-cors-origin",
            "https://b.example:8443",
        ]
    )
    assert api == ApiSettings(port=8000, cors_origins=("http://a.example", "https://b.example:8443"))
    monkeypatch.setenv(app.API_KEY_ENV, "from-env")
    assert app.parse_flags(["--listen", "--auth", "me:pw", "--api"])[1] == ApiSettings(key="from-env")
    assert app.parse_flags(["--api", "--api-key", "flag"])[1] == ApiSettings(key="flag")


def test_without_a_key_only_loopback_host_names_are_answered(url: str) -> None:
    assert httpx.get(f"{url}/v1/models", headers={"Host": "localhost"}).status_code == 200
    rebound = httpx.get(f"{url}/v1/models", headers={"Host": "evil.example:80"})
    assert rebound.status_code == 403


def test_no_cors_headers_by_default(url: str) -> None:
    origin = {"Origin": "http://localhost:3000"}
    simple = httpx.get(f"{url}/v1/models", headers=origin)
    preflight = httpx.options(
        f"{url}/v1/chat/completions", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    for response in (simple, preflight):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_cors_only_for_named_origins(fake_ctx: AppContext) -> None:
    settings = ApiSettings(key="k", cors_origins=("http://localhost:3000",))
    with serving(fake_ctx, settings) as base:
        key = {"Authorization": "Bearer k"}
        allowed = httpx.get(f"{base}/v1/models", headers={**key, "Origin": "http://localhost:3000"})
        other = httpx.get(f"{base}/v1/models", headers={**key, "Origin": "http://localhost:4000"})
        preflight = httpx.options(
            f"{base}/v1/chat/completions",
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "access-control-allow-origin" not in other.headers
        # The browser asks first without the key; the answer lets it send the key.
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


# -- sharing the model with the UI -----------------------------------------------------


def test_a_client_that_leaves_mid_stream_cancels_the_run(url: str, fake_backend: RecordingBackend) -> None:
    fake_backend.hold = threading.Event()  # never set: only a cancel lets the run go on
    fake_backend.enqueue([f" w{i}" for i in range(50)])
    stream = client(url).completions.create(model="m", prompt="Go on", max_tokens=100, stream=True)
    first = next(iter(stream))
    assert first.choices[0].text == " w0"
    stream.close()
    assert fake_backend.ended.wait(10)
    assert fake_backend.events == [("start", "Go on"), ("cancelled", "Go on")]


def test_a_client_that_stops_waiting_cancels_the_run(url: str, fake_backend: RecordingBackend) -> None:
    fake_backend.hold = threading.Event()
    fake_backend.enqueue([f" w{i}" for i in range(50)])
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/completions", json={"prompt": "Wait", "max_tokens": 100}, timeout=0.5)
    assert fake_backend.ended.wait(10)
    assert fake_backend.events == [("start", "Wait"), ("cancelled", "Wait")]


def test_api_and_ui_runs_share_one_queue(
    url: str, fake_ctx: AppContext, fake_backend: RecordingBackend
) -> None:
    fake_backend.delay = 0.01
    fake_backend.enqueue([f" ui{i}" for i in range(20)])
    fake_backend.enqueue([f" api{i}" for i in range(5)])
    ui_run = fake_ctx.models.start(GenerationRequest("ui prompt", SamplerParams()), owner="browser-session")
    reply = client(url).completions.create(model="m", prompt="api prompt", max_tokens=50)
    ui_run.wait(10)
    assert ui_run.text == "".join(f" ui{i}" for i in range(20))
    assert reply.choices[0].text == "".join(f" api{i}" for i in range(5))
    assert fake_backend.events == [
        ("start", "ui prompt"),
        ("stop", "ui prompt"),
        ("start", "api prompt"),
        ("stop", "api prompt"),
    ]
    assert ui_run.finish is not None and ui_run.finish.reason is FinishReason.STOP


def test_streamed_text_arrives_while_the_run_is_still_going(url: str, fake_backend: RecordingBackend) -> None:
    fake_backend.hold = threading.Event()
    fake_backend.enqueue([f" w{i}" for i in range(10)])
    stream = client(url).completions.create(model="m", prompt="Go", max_tokens=20, stream=True)
    chunks = iter(stream)
    first = next(chunks)
    assert not fake_backend.ended.is_set()  # the model is paused after its first token
    fake_backend.hold.set()
    rest = "".join(c.choices[0].text for c in chunks)
    assert first.choices[0].text + rest == "".join(f" w{i}" for i in range(10))


def test_a_taken_port_is_a_plain_error(url: str, fake_ctx: AppContext) -> None:
    api_app = create_api_app(app.api_deps(fake_ctx), ApiSettings(), host="127.0.0.1")
    with pytest.raises(ApiServerError, match="Is the port taken"):
        serve_in_thread(root_app(api_app), "127.0.0.1", int(url.rsplit(":", 1)[1]))
