"""GPT-2 files in ggml's gpt-2 layout (AI Dungeon 2 Classic) converted to a `gpt2` GGUF.

The merges are rebuilt from the token list alone, so they are checked against the
merges a tiny tokenizer was trained with. The converted model's logits are compared
with the same weights and trained merges written directly as GGUF by gguf-py: the
tensor bytes are copied, so they must agree exactly.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import llama_cpp
import numpy as np
import pytest
import regex
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter, TokenType

from catalog.errors import ConversionError
from catalog.ggml import (
    Architecture,
    ConversionCancelledError,
    ConvertOptions,
    LegacyFileTruncatedError,
    LegacyRefusalError,
    RefusalKind,
    convert_to_gguf,
    inspect_legacy,
)
from catalog.ggml.gpt2 import bpe_parts, recover_merges, token_text
from engine.errors import GenerationError
from engine.llama import LlamaCppBackend
from engine.types import Finish, FinishReason, GenerationRequest, LoadOptions
from ggml_writer import (
    END_OF_TEXT,
    GPT2_SMALL,
    encode,
    gpt2_tensor_type,
    gpt2_weights,
    train_gpt2_vocab,
    write_gpt2_model,
)
from presets.samplers import SamplerParams

T = GGMLQuantizationType
OPTIONS = ConvertOptions(name="tiny-gpt2")
# GPT-2's pre-tokenizer: contractions, letter runs, digit runs, other runs, spaces.
GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
TEXT = "You open the door. The dragon wakes in 2020, and you're in the house!"


def hand_made_vocab() -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    tokens = [bytes([b]) for b in range(256)]
    merges = [(b"h", b"e"), (b" ", b"t"), (b" t", b"he"), (b"a", b"t"), (b"h", b"at"), (b" t", b"hat")]
    return tokens + [a + b for a, b in merges] + [END_OF_TEXT], merges


def test_merges_are_recovered_from_a_rank_ordered_vocab() -> None:
    tokens, merges = hand_made_vocab()
    assert recover_merges(tokens) == merges
    trained_tokens, trained_merges = train_gpt2_vocab()
    assert len(trained_merges) == 40
    assert recover_merges(trained_tokens) == trained_merges


def test_a_vocab_out_of_rank_order_is_refused() -> None:
    tokens, _ = hand_made_vocab()
    swapped = list(tokens)
    swapped[256], swapped[258] = swapped[258], swapped[256]  # " the" before the "he" it is made of
    with pytest.raises(ConversionError, match="not made of two earlier tokens"):
        recover_merges(swapped)
    trained, _ = train_gpt2_vocab()
    shuffled = trained[256:-1]
    random.Random(3).shuffle(shuffled)
    with pytest.raises(ConversionError, match="merge order"):
        recover_merges([*trained[:256], *shuffled, END_OF_TEXT])
    with pytest.raises(ConversionError, match="256 single bytes"):
        recover_merges([b"t%d" % i for i in range(300)])


def test_progress_is_reported_while_recovering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("catalog.ggml.gpt2._PROGRESS_EVERY", 100)
    tokens = [bytes([b]) for b in range(256)]
    tokens += [bytes([a, b]) for a in range(97, 123) for b in range(97, 123)]
    tokens += [b"x" * n for n in range(3, 200)]  # each one: two earlier runs of x
    seen: list[tuple[float, str]] = []
    merges = recover_merges(tokens, progress=lambda f, w: seen.append((f, w)))
    assert merges[-1] == (b"x" * 128, b"x" * 71)  # the longest run splits where BPE put it
    fractions = [f for f, _ in seen]
    assert len(seen) == len(tokens) // 100 - 1 and fractions == sorted(fractions)
    assert seen[0][1] == f"Rebuilding merge rules: token 300 of {len(tokens):,}"
    assert seen[-1] == (1.0, f"Rebuilt {len(merges):,} merge rules")


def rank_ids(
    tokens: list[bytes], merges: list[tuple[bytes, bytes]]
) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """Ranks from the merges (bytes, then merge results), and every token's id."""
    ranks = {tokens[i]: i for i in range(256)}
    ranks.update({a + b: 256 + i for i, (a, b) in enumerate(merges)})
    return ranks, {raw: i for i, raw in enumerate(tokens)}


def our_encoding(text: str, tokens: list[bytes], merges: list[tuple[bytes, bytes]]) -> list[int]:
    ranks, ids = rank_ids(tokens, merges)
    return [ids[part] for word in GPT2_SPLIT.findall(text) for part in bpe_parts(word.encode(), ranks)]


# -- the converted model -------------------------------------------------------------


GGUF_NAMES = {
    "model/wte": "token_embd.weight",
    "model/wpe": "position_embd.weight",
    "model/ln_f/g": "output_norm.weight",
    "model/ln_f/b": "output_norm.bias",
    "model/lm_head": "output.weight",
}
BLOCK_NAMES = {
    "ln_1/g": "attn_norm.weight",
    "ln_1/b": "attn_norm.bias",
    "attn/c_attn/w": "attn_qkv.weight",
    "attn/c_attn/b": "attn_qkv.bias",
    "attn/c_proj/w": "attn_output.weight",
    "attn/c_proj/b": "attn_output.bias",
    "ln_2/g": "ffn_norm.weight",
    "ln_2/b": "ffn_norm.bias",
    "mlp/c_fc/w": "ffn_up.weight",
    "mlp/c_fc/b": "ffn_up.bias",
    "mlp/c_proj/w": "ffn_down.weight",
    "mlp/c_proj/b": "ffn_down.bias",
}


def gguf_name(legacy_name: str) -> str:
    """llama.cpp's gpt2 tensor name, spelled out here independently of the converter."""
    if legacy_name in GGUF_NAMES:
        return GGUF_NAMES[legacy_name]
    layer, _, rest = legacy_name.removeprefix("model/h").partition("/")
    return f"blk.{layer}.{BLOCK_NAMES[rest]}"


def write_reference(path: Path, weight_type: T, *, lm_head: bool = False) -> Path:
    """The same weights and the trained merges, written straight to a gpt2 GGUF."""
    tokens, merges = train_gpt2_vocab()
    shape = GPT2_SMALL
    writer = GGUFWriter(str(path), "gpt2")
    writer.add_context_length(shape.n_ctx)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_layer_norm_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list([token_text(raw) for raw in tokens])
    writer.add_token_types([int(TokenType.NORMAL)] * (len(tokens) - 1) + [int(TokenType.CONTROL)])
    writer.add_token_merges([f"{token_text(a)} {token_text(b)}" for a, b in merges])
    writer.add_bos_token_id(len(tokens) - 1)
    writer.add_eos_token_id(len(tokens) - 1)
    for name, array in gpt2_weights(shape, len(tokens), lm_head=lm_head).items():
        kind = gpt2_tensor_type(name, array, weight_type)
        writer.add_tensor(
            gguf_name(name), encode(array, kind), raw_dtype=None if kind in (T.F32, T.F16) else kind
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def logits(path: Path, tokens: list[int]) -> np.ndarray:
    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=64, logits_all=True, n_threads=1, n_threads_batch=1, verbose=False
    )
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: llm.n_tokens], dtype=np.float32)
    finally:
        llm.close()


@pytest.mark.parametrize(
    ("weight_type", "lm_head"),
    [
        pytest.param(T.F32, False, id="F32"),
        pytest.param(T.F16, True, id="F16-lm_head"),
        pytest.param(T.Q8_0, False, id="Q8_0"),
    ],
)
def test_converted_logits_equal_the_direct_gguf(tmp_path: Path, weight_type: T, lm_head: bool) -> None:
    legacy = write_gpt2_model(tmp_path / "aid2-tiny.bin", weight_type=weight_type, lm_head=lm_head)
    model = inspect_legacy(legacy)
    assert model.convertible and model.architecture is Architecture.GPT2, model.explanation
    converted = convert_to_gguf(legacy, tmp_path / "aid2-tiny.gguf", OPTIONS)
    reference = write_reference(tmp_path / "reference.gguf", weight_type, lm_head=lm_head)
    tokens, merges = train_gpt2_vocab()
    ids = our_encoding(TEXT, tokens, merges) + [len(tokens) - 1]  # ending in <|endoftext|>
    assert len(ids) < GPT2_SMALL.n_ctx  # learned positions: llama.cpp aborts past them
    got, want = logits(converted, ids), logits(reference, ids)
    assert got.shape == (len(ids), len(tokens))
    assert np.abs(want).max() > 0.1  # the model computes something
    np.testing.assert_array_equal(got, want)


def test_metadata_and_tensors(tmp_path: Path) -> None:
    legacy = write_gpt2_model(tmp_path / "aid2.bin", weight_type=T.Q8_0)
    reader = GGUFReader(convert_to_gguf(legacy, tmp_path / "aid2.gguf", OPTIONS))
    tokens, merges = train_gpt2_vocab()

    def value(key: str) -> object:
        field = reader.get_field(key)
        assert field is not None, key
        return field.contents()

    assert value("general.architecture") == "gpt2"
    assert value("general.file_type") == 7  # MOSTLY_Q8_0, without ggml's quantization version
    assert value("gpt2.context_length") == GPT2_SMALL.n_ctx
    assert value("gpt2.feed_forward_length") == GPT2_SMALL.n_ff
    assert value("gpt2.attention.layer_norm_epsilon") == pytest.approx(1e-5)
    assert value("tokenizer.ggml.model") == "gpt2" and value("tokenizer.ggml.pre") == "gpt-2"
    assert value("tokenizer.ggml.tokens")[:3] == ["!", '"', "#"]  # type: ignore[index]
    assert value("tokenizer.ggml.tokens")[256:258] == ["he", "Ġt"]  # type: ignore[index]
    assert value("tokenizer.ggml.merges") == [f"{token_text(a)} {token_text(b)}" for a, b in merges]
    assert value("tokenizer.ggml.token_type")[-2:] == [TokenType.NORMAL, TokenType.CONTROL]  # type: ignore[index]
    assert value("tokenizer.ggml.eos_token_id") == value("tokenizer.ggml.bos_token_id") == len(tokens) - 1
    assert value("tokenizer.ggml.add_bos_token") is False
    shapes = {t.name: (list(t.shape), t.tensor_type) for t in reader.tensors}
    e, f = GPT2_SMALL.n_embd, GPT2_SMALL.n_ff
    assert shapes["token_embd.weight"] == ([e, len(tokens)], T.Q8_0)
    assert shapes["position_embd.weight"] == ([e, GPT2_SMALL.n_ctx], T.F32)
    assert shapes["blk.1.attn_qkv.weight"] == ([e, 3 * e], T.Q8_0)
    assert shapes["blk.0.ffn_down.weight"] == ([f, e], T.Q8_0)
    assert shapes["blk.0.ffn_up.bias"] == ([f], T.F32)
    assert "output.weight" not in shapes  # tied to the token embedding, as in GPT-2
    assert len(shapes) == 4 + 12 * GPT2_SMALL.n_layer


def test_the_converted_tokenizer_matches_our_bpe(tmp_path: Path) -> None:
    legacy = write_gpt2_model(tmp_path / "aid2.bin")
    converted = convert_to_gguf(legacy, tmp_path / "aid2.gguf", OPTIONS)
    tokens, _ = train_gpt2_vocab()
    merges = recover_merges(tokens)
    backend = LlamaCppBackend(converted, LoadOptions(n_ctx=64, threads=1))
    try:
        ours = our_encoding(TEXT, tokens, merges)
        assert len(ours) < len(TEXT.encode()) - 15  # merges were applied, not only bytes
        assert backend.tokenize(TEXT) == ours
        assert backend.tokenize("<|endoftext|>") == [len(tokens) - 1]
        assert not backend.adds_bos
    finally:
        backend.close()


def test_progress_and_cancel_cover_the_merges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("catalog.ggml.gpt2._PROGRESS_EVERY", 8)
    legacy = write_gpt2_model(tmp_path / "aid2.bin")
    seen: list[tuple[float, str]] = []
    convert_to_gguf(legacy, tmp_path / "aid2.gguf", OPTIONS, progress=lambda f, w: seen.append((f, w)))
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert sum("Rebuilding merge rules" in words for _, words in seen) > 3
    cancel = threading.Event()
    after: list[str] = []

    def cancel_at_merges(_fraction: float, words: str) -> None:
        if cancel.is_set():
            after.append(words)
        if "Rebuilding merge rules" in words:
            cancel.set()

    with pytest.raises(ConversionCancelledError):
        convert_to_gguf(legacy, tmp_path / "again.gguf", OPTIONS, progress=cancel_at_merges, cancel=cancel)
    assert after == []  # stopped at the next report of the merges, long before the header
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aid2.bin", "aid2.gguf"]


# -- files that cannot convert --------------------------------------------------------


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_gpt2_files_give_a_named_error(tmp_path: Path, keep: float) -> None:
    whole = write_gpt2_model(tmp_path / "whole.bin").read_bytes()
    cut = tmp_path / "AI-Dungeon-2-Classic.bin"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(LegacyFileTruncatedError, match="cut short"):
        inspect_legacy(cut)
    with pytest.raises(LegacyFileTruncatedError):
        convert_to_gguf(cut, tmp_path / "out.gguf", OPTIONS)
    cut.write_bytes(whole[:600])  # inside the token list
    with pytest.raises(LegacyFileTruncatedError, match="vocabulary"):
        inspect_legacy(cut)
    assert not (tmp_path / "out.gguf").exists()


def test_a_missing_tensor_is_refused(tmp_path: Path) -> None:
    legacy = write_gpt2_model(tmp_path / "aid2.bin", drop=["model/h1/mlp/c_proj/b"])
    model = inspect_legacy(legacy)
    assert model.refusal is RefusalKind.GPT2
    assert "model/h1/mlp/c_proj/b is missing" in model.explanation
    with pytest.raises(LegacyRefusalError):
        convert_to_gguf(legacy, tmp_path / "aid2.gguf", OPTIONS)
    assert not (tmp_path / "aid2.gguf").exists()


def test_a_shuffled_vocab_file_is_refused(tmp_path: Path) -> None:
    tokens, _ = train_gpt2_vocab()
    middle = tokens[256:-1]
    random.Random(5).shuffle(middle)
    model = inspect_legacy(
        write_gpt2_model(tmp_path / "aid2.bin", tokens=[*tokens[:256], *middle, END_OF_TEXT])
    )
    assert (model.convertible, model.refusal) == (False, RefusalKind.GPT2)
    assert "merge rules" in model.explanation and "Spring-Dragon-GGUF" in model.explanation


def test_old_quantization_is_refused(tmp_path: Path) -> None:
    # Q8_0 written with no quantization version: ggml's block layout from before May 2023.
    model = inspect_legacy(write_gpt2_model(tmp_path / "aid2-q8_0.bin", weight_type=T.Q8_0, file_type=7))
    assert model.refusal is RefusalKind.OLD_QUANT
    assert "before May 2023" in model.explanation


def test_a_converted_gpt2_never_runs_past_its_last_position(tmp_path: Path) -> None:
    # Past its last position embedding llama.cpp aborts the process: the backend caps
    # the context at the model's, ends long replies there, and refuses longer prompts.
    converted = convert_to_gguf(write_gpt2_model(tmp_path / "aid2.bin"), tmp_path / "aid2.gguf", OPTIONS)
    backend = LlamaCppBackend(converted, LoadOptions(n_ctx=2048, threads=1))
    try:
        assert backend.n_ctx == GPT2_SMALL.n_ctx and not backend.can_shift
        prompt = "ab " * 10
        params = SamplerParams(max_new_tokens=500, temperature=0.0, top_k=1)
        items = list(backend.generate(GenerationRequest(prompt, params), threading.Event()))
        finish = items[-1]
        assert isinstance(finish, Finish)
        assert finish.reason is FinishReason.LENGTH  # it ran to the last position, and stopped
        assert finish.usage.prompt_tokens + finish.usage.completion_tokens == GPT2_SMALL.n_ctx
        with pytest.raises(GenerationError, match="context holds"):
            list(backend.generate(GenerationRequest("ab " * 200, params), threading.Event()))
    finally:
        backend.close()


def test_a_header_claiming_far_more_layers_than_tensors_is_refused_at_once(tmp_path: Path) -> None:
    legacy = write_gpt2_model(tmp_path / "aid2.bin")
    data = bytearray(legacy.read_bytes())
    # The gpt-2 header: magic, then n_vocab, n_ctx, n_embd, n_head, n_layer (int32 each).
    data[20:24] = (1_000_000).to_bytes(4, "little")
    legacy.write_bytes(bytes(data))
    model = inspect_legacy(legacy)
    assert model.refusal is RefusalKind.GPT2 and "1000000 layers" in model.explanation
