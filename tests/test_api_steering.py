"""The API's steering fields, with the real `openai` client over HTTP, on llama.cpp:
log probabilities (chat and completions, whole and streamed), logit bias, JSON mode
and JSON schemas (on the bundled Gemma too), llama.cpp's `grammar`, and clear 400s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import sillytavern_bodies

import app
from api.deps import ApiSettings
from api.server import create_api_app, root_app, serve_in_thread
from catalog.bundled import bundled_model_path
from engine.types import LoadOptions
from services.context import AppContext, Settings, create_context

SCHEMA = {
    "type": "object",
    "properties": {"mood": {"enum": ["calm", "stormy"]}, "waves": {"type": "boolean"}},
    "required": ["mood", "waves"],
    "additionalProperties": False,
}


def serve(path: Path, data: Path) -> Iterator[tuple[str, AppContext]]:
    ctx = create_context(Settings(data_dir=data, load_model=False))
    ctx.load_model(path, LoadOptions(n_ctx=1024, threads=2))
    server = serve_in_thread(
        root_app(create_api_app(app.api_deps(ctx), ApiSettings(), host="127.0.0.1")), "127.0.0.1", 0
    )
    try:
        yield server.url, ctx
    finally:
        server.stop()
        ctx.models.unload()
        ctx.store.close()


@pytest.fixture(scope="module")
def tiny(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for url, _ in serve(tiny_gguf, tmp_path_factory.mktemp("api-steering")):
        yield url


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_a_chat_reply_comes_with_its_tokens_probabilities(tiny: str) -> None:
    reply = client(tiny).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=6, temperature=0,
        logprobs=True, top_logprobs=3,
    )  # fmt: skip
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and len(content) == reply.usage.completion_tokens  # type: ignore[union-attr]
    for token in content:
        assert token.logprob <= 0 and len(token.top_logprobs) == 3
        assert token.top_logprobs[0].token == token.token  # greedy: the likeliest was written
        assert token.bytes and all(0 <= b < 256 for b in token.bytes)


def test_a_completion_has_openai_s_legacy_logprobs_and_streams_them(tiny: str) -> None:
    done = client(tiny).completions.create(
        model="tiny", prompt="hello world", max_tokens=5, temperature=0, logprobs=2
    )
    logprobs = done.choices[0].logprobs
    assert logprobs is not None and len(logprobs.tokens or []) == 5
    assert len("".join(logprobs.tokens or [])) >= len(done.choices[0].text.replace("\ufffd", ""))
    assert logprobs.text_offset == [sum(len(t) for t in (logprobs.tokens or [])[:i]) for i in range(5)]
    assert all(len(top) <= 2 for top in logprobs.top_logprobs or [])
    stream = client(tiny).completions.create(
        model="tiny", prompt="hello world", max_tokens=5, temperature=0, logprobs=2, stream=True
    )
    streamed = [
        t
        for chunk in stream
        if chunk.choices and chunk.choices[0].logprobs
        for t in chunk.choices[0].logprobs.tokens or []
    ]
    assert streamed == logprobs.tokens


def test_a_streamed_chat_reply_carries_its_tokens(tiny: str) -> None:
    stream = client(tiny).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=6, temperature=0,
        logprobs=True, stream=True,
    )  # fmt: skip
    tokens = [
        token
        for chunk in stream
        if chunk.choices and chunk.choices[0].logprobs
        for token in chunk.choices[0].logprobs.content or []
    ]
    assert len(tokens) == 6


def test_json_schemas_grammars_and_a_logit_bias_are_followed(tiny: str) -> None:
    api = client(tiny)
    form = {"type": "json_schema", "json_schema": {"name": "sea", "schema": SCHEMA}}
    reply = api.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "the sea?"}], max_tokens=200, seed=4,
        response_format=form,  # type: ignore[arg-type]
    )  # fmt: skip
    answer = json.loads(reply.choices[0].message.content or "")
    assert answer["mood"] in ("calm", "stormy") and isinstance(answer["waves"], bool)
    reply = api.completions.create(
        model="tiny", prompt="yes or no?", max_tokens=20, extra_body={"grammar": 'root ::= "yes" | "no"'}
    )
    assert reply.choices[0].text in ("yes", "no")
    banned = httpx.post(
        f"{tiny}/v1/completions",
        json={"prompt": "hello", "max_tokens": 3, "temperature": 0, "logprobs": 1, "logit_bias": {"0": -100}},
        timeout=60,
    )
    assert banned.status_code == 200 and banned.json()["choices"][0]["logprobs"]["tokens"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"logprobs": True, "top_logprobs": 99}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"hello": 5}}, "logit_bias"),
        ({"logit_bias": {"7": 500}}, "logit_bias"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
        ({"grammar": 'root ::= "a"', "json_schema": {"type": "object"}}, "grammar"),
    ],
)
def test_what_cannot_be_honoured_is_a_400_naming_the_field(
    tiny: str, body: dict[str, object], field: str
) -> None:
    answer = httpx.post(
        f"{tiny}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **body},
        timeout=30,
    )
    assert answer.status_code == 400 and answer.json()["error"]["param"] == field


def test_a_grammar_llama_cpp_cannot_parse_is_an_error_not_a_crash(tiny: str) -> None:
    answer = httpx.post(
        f"{tiny}/v1/completions",
        json={"prompt": "hi", "max_tokens": 2, "grammar": "root ::= ( oops"},
        timeout=30,
    )
    assert answer.status_code >= 400 and "grammar could not be used" in answer.text
    assert (
        httpx.post(f"{tiny}/v1/completions", json={"prompt": "hi", "max_tokens": 2}, timeout=30).status_code
        == 200
    )


def test_json_mode_gets_json_from_the_bundled_model(tmp_path: Path) -> None:
    for url, _ in serve(bundled_model_path(), tmp_path / "data"):
        reply = client(url).chat.completions.create(
            model="gemma", messages=[{"role": "user", "content": "Describe the sea as JSON."}],
            max_tokens=120, temperature=0.2, seed=1,
            response_format={"type": "json_schema", "json_schema": {"name": "sea", "schema": SCHEMA}},  # type: ignore[typeddict-item]
        )  # fmt: skip
        answer = json.loads(reply.choices[0].message.content or "")
        assert answer["mood"] in ("calm", "stormy")


def test_max_tokens_is_as_wide_as_llama_cpp_s(tiny: str) -> None:
    """SillyTavern lets a user ask for 16k tokens; the context is the only limit."""
    answer = httpx.post(f"{tiny}/v1/completions", json={"prompt": "hi", "max_tokens": 16384}, timeout=120)
    assert answer.status_code == 200, answer.text


def test_several_choices_are_written_one_after_another(tiny: str) -> None:
    reply = client(tiny).chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=4,
        n=3,
        seed=11,
        logprobs=True,
    )
    assert [choice.index for choice in reply.choices] == [0, 1, 2]
    assert len({choice.message.content for choice in reply.choices}) > 1  # seeds 11, 12, 13
    assert reply.usage is not None and reply.usage.completion_tokens == sum(
        len(choice.logprobs.content or []) for choice in reply.choices if choice.logprobs
    )
    streamed = httpx.post(
        f"{tiny}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "n": 2, "stream": True},
        timeout=30,
    )
    assert streamed.status_code == 400 and streamed.json()["error"]["param"] == "n"


@pytest.mark.parametrize("kind", ["generic", "llamacpp"])
def test_sillytavern_text_completion_bodies_are_answered(tiny: str, kind: str) -> None:
    body = sillytavern_bodies.text_completion("The sea was", kind)
    answer = httpx.post(f"{tiny}/v1/completions", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    logprobs = answer.json()["choices"][0]["logprobs"]
    assert logprobs["tokens"] and all(len(top) <= 10 for top in logprobs["top_logprobs"])


def test_a_sillytavern_chat_completion_body_is_answered(tiny: str) -> None:
    body = sillytavern_bodies.chat_completion([{"role": "user", "content": "Hello"}])
    answer = httpx.post(f"{tiny}/v1/chat/completions", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    content = answer.json()["choices"][0]["logprobs"]["content"]
    assert content and all(len(token["top_logprobs"]) == 5 for token in content)
