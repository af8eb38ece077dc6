"""Integration tests on the bundled Gemma 3 270M, through the same code the UI uses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.bundled import bundled_model_path
from engine.types import FinishReason, GenerationRequest, LoadOptions
from presets.samplers import SamplerParams
from services.chat import logic
from services.chat import reply as chat_reply
from services.chat.logic import ChatSettings
from services.context import AppContext, Settings, create_context

pytestmark = pytest.mark.gemma

GREEDY = SamplerParams(temperature=0.0, top_k=1, repeat_penalty=1.0, max_new_tokens=48)


@pytest.fixture(scope="module")
def gemma_ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppContext]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("gemma-data"), n_ctx=512, load_model=False)
    ctx = create_context(settings)
    ctx.models.load(bundled_model_path(), LoadOptions(n_ctx=512, threads=2))
    yield ctx
    ctx.models.unload()


def test_bundled_model_loads_and_streams(gemma_ctx: AppContext) -> None:
    info = gemma_ctx.models.info
    assert info is not None and info.architecture == "gemma3" and info.quant == "Q4_K_M"
    assert Path(info.path).name == "gemma-3-270m-q4_k_m.gguf"
    prompt = "The capital of France is Paris. The capital of Germany is"
    run = gemma_ctx.models.start(GenerationRequest(prompt, GREEDY), "t")
    updates = list(run.updates(0.01))
    finish = run.wait(120)
    assert len(updates) > 1, "the reply arrived in one piece instead of streaming"
    assert run.text.startswith(" Berlin")
    assert finish.usage.completion_tokens > 0


def test_stop_strings_cut_the_reply(gemma_ctx: AppContext) -> None:
    prompt = "Count: 1, 2, 3, 4, 5,"
    free = gemma_ctx.models.start(GenerationRequest(prompt, GREEDY), "t")
    free.wait(120)
    assert " 8," in free.text  # without a stop string the model counts on
    cut = gemma_ctx.models.start(GenerationRequest(prompt, GREEDY, (" 8,",)), "t")
    finish = cut.wait(120)
    assert finish.reason is FinishReason.STOP
    assert cut.text == free.text[: free.text.index(" 8,")]


def test_stop_cancels_mid_stream(gemma_ctx: AppContext) -> None:
    params = SamplerParams(temperature=0.8, max_new_tokens=400, seed=7)
    run = gemma_ctx.models.start(GenerationRequest("Once upon a time, in a land far away,", params), "t")
    while len(run.text) < 40 and not run.done:
        time.sleep(0.01)
    started = time.monotonic()
    run.stop()
    finish = run.wait(120)
    assert finish.reason is FinishReason.CANCELLED
    assert finish.usage.completion_tokens < 400
    assert time.monotonic() - started < 5


def test_second_turn_reuses_the_prefix(gemma_ctx: AppContext) -> None:
    settings = ChatSettings(params=GREEDY)
    view = logic.send(
        gemma_ctx, logic.new_chat(gemma_ctx, settings), "What is the capital of France?", settings
    )
    first = chat_reply.start(gemma_ctx, view, "t")
    first.wait(120)
    view = logic.send(gemma_ctx, view, "And the capital of Italy?", settings)
    second = chat_reply.start(gemma_ctx, view, "t")
    usage = second.wait(120).usage
    assert usage.prompt_evaluated < usage.prompt_tokens
    assert usage.prompt_reused > 20


def test_chat_longer_than_the_context_keeps_answering(gemma_ctx: AppContext) -> None:
    settings = ChatSettings(params=SamplerParams(temperature=0.7, max_new_tokens=40, seed=3))
    view = logic.new_chat(gemma_ctx, settings)
    n_ctx = gemma_ctx.models.backend.n_ctx
    total_sent = 0
    for turn in range(24):
        view = logic.send(
            gemma_ctx, view, f"Turn {turn}: tell me one more fact about the ocean, please.", settings
        )
        prepared = chat_reply.build_prompt(gemma_ctx, view)
        run = chat_reply.start(gemma_ctx, view, "t")
        finish = run.wait(120)
        assert finish.reason is not FinishReason.ERROR
        assert finish.usage.prompt_tokens + 40 <= n_ctx
        total_sent += prepared.fitted.n_tokens
        if prepared.fitted.dropped:
            break
    else:
        pytest.fail("the chat never outgrew the context")
    last = gemma_ctx.store.sessions.messages(view.session_id, last=1)[0]
    assert last.meta["anchor"] > 0  # the prompt now starts after the oldest messages
    for extra in range(3):  # and it goes on answering after the overflow
        view = logic.send(gemma_ctx, view, f"Another question {extra}?", settings)
        run = chat_reply.start(gemma_ctx, view, "t")
        assert run.wait(120).reason is not FinishReason.ERROR
    assert gemma_ctx.store.sessions.count(view.session_id) > 2 * 24 // 2
