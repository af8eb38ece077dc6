"""gpt-oss's channels read as a thinking block: the stream rewrite, and the llama.cpp
backend that keeps the channel markers (special tokens) in the text to rewrite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gguf import TokenType

from engine.llama import LlamaCppBackend
from engine.prompts import split_thinking
from engine.prompts.channels import HarmonyStream, uses_channels
from engine.types import Chunk, GenerationRequest, LoadOptions
from presets.samplers import SamplerParams
from tiny_model import vocabulary, write_tiny_llama

HARMONY = (
    "<|channel|>analysis<|message|>The user greets me. Keep it short.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>Hello <b>there</b>, a < b!"
)
AS_THINKING = "<think>The user greets me. Keep it short.</think>Hello <b>there</b>, a < b!"
# How gpt-oss streams it: one special token or word piece at a time.
TOKENS = [
    "<|channel|>", "analysis", "<|message|>", "The", " user", " greets", " me", ".", " Keep", " it",
    " short", ".", "<|end|>", "<|start|>", "assistant", "<|channel|>", "final", "<|message|>", "Hello",
    " <b>there</b>", ",", " a", " <", " b", "!",
]  # fmt: skip
MARKERS = ["<|channel|>", "<|message|>", "<|end|>", "<|start|>", "<|return|>"]


def rewrite(pieces: list[str]) -> str:
    stream = HarmonyStream()
    return "".join(stream.feed(piece) for piece in pieces) + stream.close()


def test_the_thinking_channel_becomes_a_thinking_block_however_the_text_is_cut() -> None:
    assert "".join(TOKENS) == HARMONY
    assert rewrite(TOKENS) == AS_THINKING
    for i in range(len(HARMONY) + 1):
        for j in range(i, len(HARMONY) + 1, 7):
            assert rewrite([HARMONY[:i], HARMONY[i:j], HARMONY[j:]]) == AS_THINKING, (i, j)
    thought = split_thinking(AS_THINKING)
    assert thought.thinking == "The user greets me. Keep it short."
    assert thought.answer == "Hello <b>there</b>, a < b!"


def test_an_answer_without_thinking_and_a_cut_off_thought() -> None:
    assert rewrite(["<|channel|>final<|message|>", "Just this."]) == "Just this."
    cut = rewrite(["<|channel|>analysis<|message|>", "Hmm", "<|end|>", "<|start|>"])
    assert cut == "<think>Hmm"  # the budget or the length limit ended it mid-thought
    header = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
    tool = rewrite([header, '{"city":"Oslo"}'])
    assert tool == '{"city":"Oslo"}'


def test_only_templates_with_channels_count() -> None:
    assert uses_channels("{{ '<|start|>assistant<|channel|>final<|message|>' }}")
    assert not uses_channels("{{ '<|im_start|>assistant\\n' }}")


@pytest.fixture(scope="module")
def harmony_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokens, scores, types = vocabulary()
    tokens += MARKERS
    scores += [0.0] * len(MARKERS)
    types += [int(TokenType.CONTROL)] * len(MARKERS)
    template = "{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{% endfor %}"
    template += "{% if add_generation_prompt %}<|start|>assistant<|channel|>final<|message|>{% endif %}"
    path = tmp_path_factory.mktemp("harmony") / "tiny-harmony.gguf"
    return write_tiny_llama(path, chat_template=template, vocab=(tokens, scores, types))


def test_a_model_with_channels_keeps_their_markers_in_its_text(harmony_gguf: Path, tiny_gguf: Path) -> None:
    harmony = LlamaCppBackend(harmony_gguf, LoadOptions(n_ctx=256))
    plain = LlamaCppBackend(tiny_gguf, LoadOptions(n_ctx=256))
    try:
        [channel] = harmony.tokenize("<|channel|>")
        assert harmony.channels and not plain.channels
        assert harmony._llm.detokenize([channel]) == b"<|channel|>"
        assert plain._llm.detokenize([plain._llm.token_eos()]) == b""  # special tokens stay out
    finally:
        harmony.close()
        plain.close()


def test_the_backend_streams_the_rewritten_text(harmony_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = LlamaCppBackend(harmony_gguf, LoadOptions(n_ctx=256))

    def scripted(*_args: Any) -> Iterator[tuple[str, str | None, None]]:
        yield from ((token, None, None) for token in TOKENS[:-1])
        yield TOKENS[-1], "stop", None

    monkeypatch.setattr(backend, "_stream", scripted)
    try:
        request = GenerationRequest("Hi", SamplerParams(max_new_tokens=8))
        chunks = [c.text for c in backend.generate(request, threading.Event()) if isinstance(c, Chunk)]
        assert "".join(chunks) == AS_THINKING
        assert chunks[0] == "<think>"  # the block opens as soon as the header is complete
    finally:
        backend.close()
