"""Seeing and steering the tokens on the tiny model through llama.cpp: each token's log
probability and the alternatives it weighed, a logit bias that bans or forces a token,
and a GBNF grammar or a JSON schema the reply must follow."""

from __future__ import annotations

import json
import math
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from engine.errors import GenerationError
from engine.llama import LlamaCppBackend
from engine.types import Chunk, Finish, GenerationRequest, LoadOptions, TokenLogprob
from presets.samplers import SamplerParams

GREEDY = SamplerParams(max_new_tokens=12, temperature=0.0, seed=7)
PROMPT = "hello world the end hello"


@pytest.fixture(scope="module")
def backend(tiny_gguf: Path) -> LlamaCppBackend:
    loaded = LlamaCppBackend(tiny_gguf, LoadOptions(n_ctx=512))
    yield loaded  # type: ignore[misc]
    loaded.close()


def run(backend: LlamaCppBackend, request: GenerationRequest) -> tuple[str, list[TokenLogprob], Finish]:
    items = list(backend.generate(request, threading.Event()))
    chunks = [item for item in items if isinstance(item, Chunk)]
    finish = items[-1]
    assert isinstance(finish, Finish)
    return "".join(c.text for c in chunks), [lp for c in chunks for lp in c.logprobs], finish


def test_each_token_comes_with_its_probability_and_the_alternatives(backend: LlamaCppBackend) -> None:
    text, logprobs, finish = run(backend, GenerationRequest(PROMPT, GREEDY, logprobs=3))
    assert len(logprobs) == finish.usage.completion_tokens > 0
    assert b"".join(lp.chosen.raw for lp in logprobs).decode("utf-8", errors="ignore") == text
    for record in logprobs:
        assert record.chosen.logprob <= 0 and len(record.top) == 3
        ranked = [choice.logprob for choice in record.top]
        assert ranked == sorted(ranked, reverse=True)
        assert record.top[0].token == record.chosen.token  # greedy takes the likeliest
        assert sum(math.exp(choice.logprob) for choice in record.top) <= 1.0001
    plain, none, _ = run(backend, GenerationRequest(PROMPT, GREEDY))
    assert plain == text and none == []  # recording changes nothing, and is off unless asked


def test_a_logit_bias_bans_or_forces_a_token(backend: LlamaCppBackend) -> None:
    _, logprobs, _ = run(backend, GenerationRequest(PROMPT, GREEDY, logprobs=2))
    first, runner_up = logprobs[0].top[0].token, logprobs[0].top[1].token
    _, banned, _ = run(backend, GenerationRequest(PROMPT, GREEDY, logprobs=0, logit_bias=((first, -100.0),)))
    assert banned[0].chosen.token != first
    forced = backend.tokenize(" end")[-1]
    _, pushed, _ = run(backend, GenerationRequest(PROMPT, GREEDY, logprobs=0, logit_bias=((forced, 100.0),)))
    assert pushed[0].chosen.token == forced and runner_up != -1


def test_a_grammar_decides_what_may_be_written(backend: LlamaCppBackend) -> None:
    params = SamplerParams(max_new_tokens=40, temperature=1.0, seed=3)
    for seed in range(3):
        request = GenerationRequest(PROMPT, replace(params, seed=seed), grammar='root ::= "yes" | "no"')
        text, _, finish = run(backend, request)
        assert text in ("yes", "no") and finish.reason.value == "stop"


def test_a_json_schema_gets_json_that_follows_it(backend: LlamaCppBackend) -> None:
    schema = {
        "type": "object",
        "properties": {"mood": {"enum": ["calm", "stormy"]}, "waves": {"type": "boolean"}},
        "required": ["mood", "waves"],
        "additionalProperties": False,
    }
    params = SamplerParams(max_new_tokens=200, temperature=0.7, seed=5)
    text, _, _ = run(backend, GenerationRequest(PROMPT, params, json_schema=json.dumps(schema)))
    answer = json.loads(text)
    assert answer["mood"] in ("calm", "stormy") and isinstance(answer["waves"], bool)


def test_a_broken_grammar_is_refused_with_a_message(backend: LlamaCppBackend) -> None:
    with pytest.raises(GenerationError, match="grammar could not be used"):
        run(backend, GenerationRequest(PROMPT, GREEDY, grammar="root ::= ( unclosed"))
    with pytest.raises(GenerationError, match="JSON schema could not be used"):
        run(backend, GenerationRequest(PROMPT, GREEDY, json_schema="{not json"))
    text, _, _ = run(backend, GenerationRequest(PROMPT, GREEDY))  # still usable
    assert isinstance(text, str)
