"""Legacy GGML → GGUF conversion, checked by what llama.cpp computes.

Each tiny legacy file is converted, then its next-token logits are compared with those
of the same weights written directly as GGUF by gguf-py. The tensor bytes are copied,
never re-encoded, so the two must agree exactly.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import llama_cpp
import numpy as np
import pytest
from gguf import MODEL_ARCH, GGMLQuantizationType, GGUFReader, GGUFWriter, get_tensor_name_map
from gguf.quants import dequantize

from catalog.errors import ConversionError
from catalog.ggml import (
    ConversionCancelledError,
    ConvertOptions,
    LegacyRefusalError,
    convert_to_gguf,
    inspect_legacy,
    suggest_options,
)
from engine.gguf import model_info, read_header
from engine.manager import ModelManager
from engine.types import GenerationRequest, LoadOptions
from ggml_writer import SMALL, WIDE, TinyShape, encode, legacy_vocab, tensor_type, tiny_weights, write_llama
from presets.samplers import SamplerParams
from tiny_model import vocabulary

T = GGMLQuantizationType
EPS = 1e-5
# <s>, raw bytes "Hi", the word tokens, </s>: exercises byte and word embeddings.
TOKENS = [1, 3 + ord("H"), 3 + ord("i"), 259, 260, 261, 262, 2, 3 + ord(" ")]
OPTIONS = ConvertOptions(name="tiny-legacy", context_length=2048, rms_epsilon=EPS)


def logits(path: Path) -> np.ndarray:
    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=256, logits_all=True, n_threads=1, n_threads_batch=1, verbose=False
    )
    try:
        llm.eval(TOKENS)
        return np.array(llm.scores[: llm.n_tokens], dtype=np.float32)
    finally:
        llm.close()


def write_reference(
    path: Path, shape: TinyShape, weight_type: T, weights: dict[str, np.ndarray] | None = None
) -> Path:
    """The legacy file's tensors (or `weights`), written straight to GGUF with gguf-py's own names."""
    names = get_tensor_name_map(MODEL_ARCH.LLAMA, shape.n_layer)
    tokens, _, types = vocabulary()
    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(2048)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.n_embd // shape.n_head)
    writer.add_layer_norm_rms_eps(EPS)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([score for _, score in legacy_vocab()])
    writer.add_token_types(types)
    for legacy_name, array in (weights or tiny_weights(shape)).items():
        gguf_name = names.get_name(legacy_name, try_suffixes=(".weight",))
        assert gguf_name is not None, legacy_name
        kind = tensor_type(array, weight_type)
        data = encode(array, kind)
        writer.add_tensor(gguf_name, data, raw_dtype=None if kind in (T.F32, T.F16) else kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


CASES = [
    pytest.param(SMALL, T.F32, id="F32"),
    pytest.param(SMALL, T.F16, id="F16"),
    pytest.param(SMALL, T.Q4_0, id="Q4_0"),
    pytest.param(SMALL, T.Q8_0, id="Q8_0"),
    pytest.param(WIDE, T.Q6_K, id="Q6_K"),
]


@pytest.mark.parametrize(("shape", "weight_type"), CASES)
def test_converted_logits_equal_the_direct_gguf(tmp_path: Path, shape: TinyShape, weight_type: T) -> None:
    legacy = write_llama(tmp_path / "tiny.ggmlv3.bin", shape, weight_type=weight_type)
    converted = convert_to_gguf(legacy, tmp_path / "tiny.gguf", OPTIONS)
    reference = write_reference(tmp_path / "reference.gguf", shape, weight_type)
    got, want = logits(converted), logits(reference)
    assert got.shape == (len(TOKENS), len(legacy_vocab()))
    assert np.abs(want).max() > 0.1  # the model computes something
    np.testing.assert_array_equal(got, want)


def dequantized(shape: TinyShape, weight_type: T, seed: int = 0) -> dict[str, np.ndarray]:
    """The tiny weights as their quantized blocks decode (by gguf-py), in F32."""
    weights = tiny_weights(shape, seed)
    return {
        name: array
        if array.ndim == 1
        else dequantize(encode(array, weight_type), weight_type).reshape(array.shape)
        for name, array in weights.items()
    }


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.sqrt(((got - want) ** 2).mean() / (want**2).mean()))


@pytest.mark.parametrize(("shape", "weight_type"), [(SMALL, T.Q4_0), (SMALL, T.Q8_0), (WIDE, T.Q6_K)])
def test_copied_blocks_mean_what_they_decode_to(tmp_path: Path, shape: TinyShape, weight_type: T) -> None:
    # Guards against blocks copied at the right size but read with the wrong meaning. The
    # only difference left is llama.cpp quantizing activations for quantized matmuls.
    legacy = write_llama(tmp_path / "q.bin", shape, weight_type=weight_type)
    quantized = logits(convert_to_gguf(legacy, tmp_path / "q.gguf", OPTIONS))
    decoded = logits(write_reference(tmp_path / "f32.gguf", shape, T.F32, dequantized(shape, weight_type)))
    unrelated = logits(write_reference(tmp_path / "other.gguf", shape, T.F32, tiny_weights(shape, seed=7)))
    assert relative_error(quantized, decoded) < 0.15  # measured: Q4_0 0.025, Q8_0 0.042, Q6_K 0.071
    assert relative_error(unrelated, decoded) > 0.5


@pytest.mark.parametrize(
    ("container", "version", "weight_type"),
    [("GGML", None, T.F32), ("GGMF", 1, T.F16), ("GGJT", 1, T.F16), ("GGJT", 2, T.F32), ("GGJT", 2, T.Q5_0)],
)
def test_older_containers_convert(
    tmp_path: Path, container: str, version: int | None, weight_type: T
) -> None:
    legacy = write_llama(tmp_path / "old.bin", container=container, version=version, weight_type=weight_type)
    model = inspect_legacy(legacy)
    assert model.convertible, model.explanation
    converted = convert_to_gguf(legacy, tmp_path / "old.gguf", OPTIONS)
    reference = write_reference(tmp_path / "reference.gguf", SMALL, weight_type)
    np.testing.assert_array_equal(logits(converted), logits(reference))


def test_vocabulary_and_metadata(tmp_path: Path) -> None:
    legacy = write_llama(tmp_path / "tiny.bin", weight_type=T.Q8_0)
    options = ConvertOptions(name="Tiny L2", context_length=4096, rms_epsilon=1e-5, rope_freq_base=1e6)
    reader = GGUFReader(convert_to_gguf(legacy, tmp_path / "tiny.gguf", options))
    tokens, _, types = vocabulary()

    def value(key: str) -> object:
        field = reader.get_field(key)
        assert field is not None, key
        return field.contents()

    assert value("tokenizer.ggml.tokens") == tokens
    assert value("tokenizer.ggml.token_type") == types
    assert value("tokenizer.ggml.scores")[-4:] == [-1.0, -2.0, -3.0, -4.0]  # type: ignore[index]
    assert value("general.name") == "Tiny L2"
    assert value("general.file_type") == 7  # MOSTLY_Q8_0, copied
    assert value("llama.context_length") == 4096
    assert value("llama.feed_forward_length") == SMALL.n_ff  # inferred from the tensors
    assert value("llama.attention.head_count_kv") == SMALL.n_head_kv
    assert value("llama.rope.dimension_count") == SMALL.n_embd // SMALL.n_head
    assert value("llama.rope.freq_base") == pytest.approx(1e6)
    assert value("llama.attention.layer_norm_rms_epsilon") == pytest.approx(1e-5)
    shapes = {t.name: (list(t.shape), t.tensor_type) for t in reader.tensors}
    assert shapes["token_embd.weight"] == ([SMALL.n_embd, 263], T.Q8_0)
    assert shapes["blk.1.ffn_down.weight"] == ([SMALL.n_ff, SMALL.n_embd], T.Q8_0)
    assert shapes["blk.0.attn_k.weight"] == ([SMALL.n_embd, 32], T.Q8_0)
    assert shapes["output_norm.weight"] == ([SMALL.n_embd], T.F32)
    assert len(shapes) == 3 + 9 * SMALL.n_layer


def test_converted_model_loads_and_generates_through_the_engine(tmp_path: Path) -> None:
    legacy = write_llama(tmp_path / "mythomax-l2-13b.ggmlv3.q8_0.bin", weight_type=T.Q8_0)
    model = inspect_legacy(legacy)
    options = suggest_options(model, None)
    converted = convert_to_gguf(legacy, tmp_path / "mythomax.gguf", options)
    info = model_info(converted, read_header(converted))
    assert (info.architecture, info.context_length, info.quant) == ("llama", 4096, "Q8_0")
    manager = ModelManager()
    try:
        loaded = manager.load(converted, LoadOptions(n_ctx=256, threads=1))
        assert loaded.name == "mythomax-l2-13b"
        # SentencePiece prefixes a space (U+2581), spelled in byte tokens by this vocabulary.
        assert manager.backend.tokenize("Hi") == [3 + 0xE2, 3 + 0x96, 3 + 0x81, 3 + ord("H"), 3 + ord("i")]
        run = manager.start(GenerationRequest("Hi", SamplerParams(max_new_tokens=6, seed=3)), "test")
        finish = run.wait(30)
        assert finish.usage.completion_tokens > 0
    finally:
        manager.unload()


def test_progress_reaches_one_and_the_original_is_untouched(tmp_path: Path) -> None:
    legacy = write_llama(tmp_path / "tiny.bin", weight_type=T.Q4_0)
    before = hashlib.sha256(legacy.read_bytes()).hexdigest()
    stamp = legacy.stat().st_mtime_ns
    seen: list[tuple[float, str]] = []
    convert_to_gguf(legacy, tmp_path / "tiny.gguf", OPTIONS, progress=lambda f, w: seen.append((f, w)))
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert any("Copying tensor" in words for _, words in seen)
    assert hashlib.sha256(legacy.read_bytes()).hexdigest() == before
    assert legacy.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.bin", "tiny.gguf"]  # no temp file left


def test_cancelled_conversion_leaves_nothing(tmp_path: Path) -> None:
    legacy = write_llama(tmp_path / "tiny.bin", weight_type=T.F32)
    cancel = threading.Event()

    def cancel_midway(fraction: float, _words: str) -> None:
        if fraction > 0.3:
            cancel.set()

    with pytest.raises(ConversionCancelledError):
        convert_to_gguf(legacy, tmp_path / "tiny.gguf", OPTIONS, progress=cancel_midway, cancel=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.bin"]


def test_large_tensors_are_copied_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Progress and cancel work inside one big tensor, not only between tensors.
    monkeypatch.setattr("catalog.ggml.convert.CHUNK_BYTES", 4096)
    legacy = write_llama(tmp_path / "tiny.bin", weight_type=T.F32)
    words: list[str] = []
    cancel = threading.Event()

    def watch(_fraction: float, text: str) -> None:
        words.append(text)
        if words.count(text) == 3 and text.startswith("Copying tensor 1 "):
            cancel.set()

    with pytest.raises(ConversionCancelledError):
        convert_to_gguf(legacy, tmp_path / "tiny.gguf", OPTIONS, progress=watch, cancel=cancel)
    assert not any(text.startswith("Copying tensor 2 ") for text in words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.bin"]


def test_cancel_before_start(tmp_path: Path) -> None:
    legacy = write_llama(tmp_path / "tiny.bin")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ConversionCancelledError):
        convert_to_gguf(legacy, tmp_path / "tiny.gguf", OPTIONS, cancel=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.bin"]


def test_failed_conversion_leaves_nothing(tmp_path: Path) -> None:
    legacy = write_llama(tmp_path / "tiny.bin")

    def explode(fraction: float, _words: str) -> None:
        if fraction > 0.5:
            raise OSError(28, "No space left on device")

    with pytest.raises(ConversionError, match="No space left"):
        convert_to_gguf(legacy, tmp_path / "tiny.gguf", OPTIONS, progress=explode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.bin"]


def test_destination_rules(tmp_path: Path) -> None:
    legacy = write_llama(tmp_path / "tiny.bin")
    with pytest.raises(ConversionError, match="original is never overwritten"):
        convert_to_gguf(legacy, legacy, OPTIONS)
    (tmp_path / "taken.gguf").write_bytes(b"mine")
    with pytest.raises(ConversionError, match="already exists"):
        convert_to_gguf(legacy, tmp_path / "taken.gguf", OPTIONS)
    assert (tmp_path / "taken.gguf").read_bytes() == b"mine"
    with pytest.raises(ConversionError, match="does not exist"):
        convert_to_gguf(legacy, tmp_path / "missing" / "x.gguf", OPTIONS)


def test_gqa_option_must_match_the_tensors(tmp_path: Path) -> None:
    legacy = write_llama(tmp_path / "tiny.bin")
    with pytest.raises(ConversionError, match="factor of 2"):
        convert_to_gguf(legacy, tmp_path / "x.gguf", ConvertOptions(name="x", gqa=8))
    assert not (tmp_path / "x.gguf").exists()


def test_refused_kinds_do_not_convert(tmp_path: Path) -> None:
    legacy = write_llama(tmp_path / "old.bin", container="GGJT", version=2, weight_type=T.Q4_0)
    with pytest.raises(LegacyRefusalError) as caught:
        convert_to_gguf(legacy, tmp_path / "old.gguf", OPTIONS)
    assert caught.value.kind == "old-quant"
    assert not (tmp_path / "old.gguf").exists()
