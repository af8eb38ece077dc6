"""Recognising legacy model files: what converts, what is refused and why, damaged files."""

from __future__ import annotations

import struct
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as T
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.errors import ConversionError, UnsupportedLegacyModelError
from catalog.ggml import (
    Architecture,
    ConvertOptions,
    LegacyFileDamagedError,
    LegacyFileTruncatedError,
    LegacyModel,
    LegacyRefusalError,
    LlamaFacts,
    NotALegacyModelError,
    RefusalKind,
    convert_to_gguf,
    default_output_name,
    inspect_legacy,
    suggest_options,
)
from ggml_writer import (
    SMALL,
    WIDE,
    Record,
    llama_records,
    tiny_weights,
    write_gpt2,
    write_gptj,
    write_llama,
    write_neox,
    write_qk_k_64,
    write_rwkv,
)


def test_ggjt_v3_llama_is_convertible(tmp_path: Path) -> None:
    model = inspect_legacy(write_llama(tmp_path / "tiny.bin", weight_type=T.Q4_0))
    assert (model.label, model.architecture, model.file_type_name) == ("GGJT v3", "llama", "MOSTLY_Q4_0")
    assert model.convertible and model.refusal is None
    assert model.llama == LlamaFacts(
        n_vocab=263, n_embd=64, n_head=4, n_head_kv=2, n_layer=2, n_ff=128, n_rot=16
    )
    assert model.hparams["n_mult"] == 256
    assert len(model.tensors) == 3 + 9 * SMALL.n_layer
    model.require_convertible()


def test_k_quant_file_is_convertible(tmp_path: Path) -> None:
    model = inspect_legacy(write_llama(tmp_path / "wide.bin", WIDE, weight_type=T.Q6_K))
    assert model.convertible and model.file_type_name == "MOSTLY_Q6_K"
    assert model.llama is not None and model.llama.n_ff == WIDE.n_ff


OLD_QUANTS = [
    pytest.param("GGJT", 2, T.Q4_0, None, id="ggjt-v2-q4_0"),
    pytest.param("GGJT", 2, T.Q8_0, None, id="ggjt-v2-q8_0"),
    pytest.param("GGJT", 2, T.Q4_1, None, id="ggjt-v2-q4_1"),
    pytest.param("GGJT", 1, T.Q4_0, None, id="ggjt-v1-q4_0"),
    pytest.param("GGJT", 1, T.Q5_0, None, id="ggjt-v1-q5_0"),
    pytest.param("GGMF", 1, T.Q4_1, None, id="ggmf-q4_1"),
    pytest.param("GGML", None, T.Q8_0, None, id="ggml-q8_0"),
    pytest.param("GGJT", 3, T.F32, 5, id="ggjt-v3-q4_2"),
    pytest.param("GGJT", 1, T.Q4_0, 1, id="ggjt-v1-f16-with-a-q4_0-tensor"),
]


@pytest.mark.parametrize(("container", "version", "weight_type", "file_type"), OLD_QUANTS)
def test_old_quantizations_are_refused(
    tmp_path: Path, container: str, version: int | None, weight_type: T, file_type: int | None
) -> None:
    path = write_llama(
        tmp_path / "old.bin",
        container=container,
        version=version,
        weight_type=weight_type,
        file_type=file_type,
    )
    model = inspect_legacy(path)
    assert not model.convertible
    assert model.refusal is RefusalKind.OLD_QUANT
    assert "before May 2023" in model.explanation and "GGUF version" in model.explanation
    with pytest.raises(LegacyRefusalError) as caught:
        model.require_convertible()
    assert caught.value.kind == "old-quant"
    assert isinstance(caught.value, UnsupportedLegacyModelError)


@pytest.mark.parametrize("shape", [WIDE, SMALL], ids=["block-sizes", "short-rows"])
def test_qk_k_64_k_quants_are_refused(tmp_path: Path, shape: object) -> None:
    # WIDE rows hold whole 256-value blocks, so only the byte sizes give the build away.
    model = inspect_legacy(write_qk_k_64(tmp_path / "qkk64.bin", shape))  # type: ignore[arg-type]
    assert model.architecture is Architecture.LLAMA
    assert model.refusal is RefusalKind.QK_K_64
    assert "QK_K=64" in model.explanation


def test_rwkv_is_refused(tmp_path: Path) -> None:
    model = inspect_legacy(write_rwkv(tmp_path / "rwkv-4-raven.bin"))
    assert (model.label, model.architecture, model.refusal) == ("GGMF v101", "rwkv", RefusalKind.RWKV)
    assert model.hparams == {"n_vocab": 300, "n_embd": 32, "n_layer": 1, "data_type": 0}
    assert "RWKV-6" in model.explanation


def test_gpt2_is_detected_and_explained(tmp_path: Path) -> None:
    model = inspect_legacy(write_gpt2(tmp_path / "AI-Dungeon-2-Classic.bin"))
    assert (model.label, model.architecture, model.refusal) == ("GGML", "gpt2", RefusalKind.GPT2)
    assert model.hparams["n_ctx"] == 64 and model.hparams["ftype"] == 2001
    assert model.file_type_name == "MOSTLY_F16 (quantization v2)"
    assert "merge rules" in model.explanation and "Spring-Dragon-GGUF" in model.explanation
    assert model.alternative_id == "spring-dragon-13b"
    assert [t.name for t in model.tensors][:3] == ["model/ln_f/g", "model/ln_f/b", "model/wte"]


@pytest.mark.parametrize(
    ("writer", "arch", "words"),
    [(write_gptj, Architecture.GPTJ, "no GPT-J implementation"), (write_neox, Architecture.NEOX, "GPT-NeoX")],
)
def test_other_ggml_example_models_are_refused(
    tmp_path: Path, writer: object, arch: Architecture, words: str
) -> None:
    model = inspect_legacy(writer(tmp_path / "other.bin"))  # type: ignore[operator]
    assert model.architecture is arch
    assert model.refusal is RefusalKind.OTHER_ARCH
    assert words in model.explanation


def test_llama_container_with_foreign_tensors_is_refused(tmp_path: Path) -> None:
    records = [Record("transformer.word_embeddings.weight", (64, 263), 0, bytes(64 * 263 * 4))]
    model = inspect_legacy(write_llama(tmp_path / "falcon.bin", records=records))
    assert (model.architecture, model.refusal) == (Architecture.UNKNOWN, RefusalKind.OTHER_ARCH)
    assert "transformer.word_embeddings.weight" in model.explanation


def test_extra_unknown_tensor_is_refused(tmp_path: Path) -> None:
    records = llama_records(tiny_weights(), T.F32) + [Record("layers.0.attention.bias", (64,), 0, bytes(256))]
    model = inspect_legacy(write_llama(tmp_path / "odd.bin", records=records, weight_type=T.F32))
    assert model.refusal is RefusalKind.OTHER_ARCH
    assert "layers.0.attention.bias" in model.explanation


def test_gguf_files_need_no_conversion(tiny_gguf: Path) -> None:
    model = inspect_legacy(tiny_gguf)
    assert (model.container, model.version, model.refusal) == ("GGUF", 3, RefusalKind.ALREADY_GGUF)
    assert "load it directly" in model.explanation


def test_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.bin").write_text("just some notes, not weights")
    with pytest.raises(NotALegacyModelError, match="not a GGML model file"):
        inspect_legacy(tmp_path / "notes.bin")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(NotALegacyModelError, match="empty"):
        inspect_legacy(tmp_path / "empty.bin")
    with pytest.raises(ConversionError, match="no file"):
        inspect_legacy(tmp_path / "missing.bin")


@pytest.mark.parametrize("container", ["GGJT", "GGMF", "GGML"])
def test_every_truncation_is_named(tmp_path: Path, container: str) -> None:
    version = None if container == "GGML" else 1 if container == "GGMF" else 3
    whole = write_llama(tmp_path / "whole.bin", container=container, version=version, weight_type=T.F16)
    data = whole.read_bytes()
    vocab_end = data.index(b" end") + 4
    cuts = [5, 9, 20, 100, vocab_end, vocab_end + 8, vocab_end + 30, len(data) // 2, len(data) - 1]
    cuts += list(range(4, len(data), 997))
    cut_file = tmp_path / "cut.bin"
    for cut in cuts:
        cut_file.write_bytes(data[:cut])
        with pytest.raises(LegacyFileTruncatedError, match="(?i)download it again"):
            inspect_legacy(cut_file)


def test_truncated_file_does_not_convert(tmp_path: Path) -> None:
    data = write_llama(tmp_path / "whole.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-100])
    with pytest.raises(LegacyFileTruncatedError):
        convert_to_gguf(tmp_path / "cut.bin", tmp_path / "cut.gguf", ConvertOptions(name="cut"))
    assert not (tmp_path / "cut.gguf").exists()


def _patched(path: Path, offset: int, value: int) -> Path:
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, offset, value)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("offset", "value", "words"),
    [
        (4, 7, "GGJT version 7"),
        (8, 0, "vocabulary of 0 tokens"),
        (12, 0, "n_embd = 0"),
        (20, 3, "do not divide"),  # n_head 3 for 64 dimensions
        (32, 99, "unknown file type 99"),
    ],
)
def test_corrupt_headers_are_named(tmp_path: Path, offset: int, value: int, words: str) -> None:
    path = _patched(write_llama(tmp_path / "bad.bin"), offset, value)
    with pytest.raises(LegacyFileDamagedError, match=words):
        inspect_legacy(path)


def test_corrupt_tensor_record_is_named(tmp_path: Path) -> None:
    path = write_llama(tmp_path / "bad.bin")
    first_record = path.read_bytes().index(b"tok_embeddings.weight") - 4 * 5
    _patched(path, first_record, 9)  # n_dims
    with pytest.raises(LegacyFileDamagedError, match="9 dimensions"):
        inspect_legacy(path)


def _fuzz_base() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return write_llama(Path(folder) / "fuzz.bin", weight_type=T.Q4_0).read_bytes()


_BASE = _fuzz_base()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(1, len(_BASE)),
)
def test_mangled_files_never_crash(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_BASE[:cut])
    for offset, value in flips:
        if offset < len(data):
            data[offset] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mangled.bin"
        path.write_bytes(bytes(data))
        try:
            model = inspect_legacy(path)
            if model.convertible:
                convert_to_gguf(path, Path(folder) / "out.gguf", ConvertOptions(name="fuzz"))
        except ConversionError:
            pass  # every failure is a named, plain-words error


# -- guessing the missing metadata ---------------------------------------------------


def _as(model: LegacyModel, n_layer: int, n_embd: int, n_head: int, n_head_kv: int) -> LegacyModel:
    facts = LlamaFacts(32000, n_embd, n_head, n_head_kv, n_layer, n_ff=4 * n_embd, n_rot=n_embd // n_head)
    return replace(model, llama=facts)


@pytest.fixture
def tiny_model(tmp_path: Path) -> LegacyModel:
    return inspect_legacy(write_llama(tmp_path / "some-model.ggmlv3.q8_0.bin"))


def test_70b_gets_gqa_8_and_llama_2_defaults(tiny_model: LegacyModel) -> None:
    options = suggest_options(_as(tiny_model, 80, 8192, 64, 8), None)
    assert (options.gqa, options.context_length, options.rms_epsilon) == (8, 4096, 1e-5)
    assert options.notes[0].startswith("70B Llama 2")


def test_65b_without_gqa_is_llama_1(tiny_model: LegacyModel) -> None:
    options = suggest_options(_as(tiny_model, 80, 8192, 64, 64), None)
    assert (options.gqa, options.context_length, options.rms_epsilon) == (1, 2048, 1e-6)
    assert options.notes[0].startswith("65B LLaMA 1")


@pytest.mark.parametrize(
    ("hint", "name", "context", "epsilon", "prompt_format"),
    [
        ("TheBloke/MythoMax-L2-13B-GGML", "MythoMax-L2-13B", 4096, 1e-5, "alpaca"),
        (
            "TheBloke/airoboros-l2-13B-gpt4-1.4.1-GGML",
            "airoboros-l2-13B-gpt4-1.4.1",
            4096,
            1e-5,
            "vicuna-1.1",
        ),
        ("KoboldAI/LLAMA2-13B-Holodeck-1-GGML", "LLAMA2-13B-Holodeck-1", 4096, 1e-5, "plain"),
        ("TheBloke/Spring-Dragon-GGML", "Spring-Dragon", 2048, 1e-6, "plain"),
        ("TheBloke/Nous-Hermes-Llama2-GGML", "Nous-Hermes-Llama2", 4096, 1e-5, "alpaca"),
        ("some-13b.ggmlv3.q4_K_M.bin", "some-13b", 2048, 5e-6, "plain"),
    ],
)
def test_catalog_hints(
    tiny_model: LegacyModel, hint: str, name: str, context: int, epsilon: float, prompt_format: str
) -> None:
    options = suggest_options(_as(tiny_model, 40, 5120, 40, 40), hint)
    assert (options.name, options.context_length, options.rms_epsilon) == (name, context, epsilon)
    assert options.prompt_format_id == prompt_format
    assert options.notes[0].startswith("13B")


def test_code_llama_and_superhot(tiny_model: LegacyModel) -> None:
    code = suggest_options(_as(tiny_model, 48, 8192, 64, 8), "TheBloke/CodeLlama-34B-GGML")
    assert (code.context_length, code.rope_freq_base, code.gqa) == (16384, 1e6, 8)
    hot = suggest_options(_as(tiny_model, 40, 5120, 40, 40), "TheBloke/Chronos-13B-SuperHOT-8K-GGML")
    assert (hot.context_length, hot.rope_linear_scale) == (8192, 4.0)


def test_file_name_is_the_fallback_hint(tiny_model: LegacyModel) -> None:
    options = suggest_options(tiny_model, None)
    assert options.name == "some-model"
    assert options.gqa == 2  # read from the tensors
    assert default_output_name(tiny_model) == "some-model.q8_0.gguf"


def test_no_suggestions_for_refused_files(tmp_path: Path) -> None:
    model = inspect_legacy(write_rwkv(tmp_path / "rwkv.bin"))
    with pytest.raises(LegacyRefusalError):
        suggest_options(model, "RWKV-4 Raven")


@pytest.mark.parametrize(
    "bad",
    [
        {"name": " "},
        {"context_length": 0},
        {"rms_epsilon": 0.5},
        {"gqa": 0},
        {"rope_freq_base": -1.0},
        {"rope_linear_scale": 0.5},
    ],
)
def test_options_are_checked(bad: dict[str, object]) -> None:
    values: dict[str, object] = {"name": "x"} | bad
    with pytest.raises(ConversionError):
        ConvertOptions(**values)  # type: ignore[arg-type]
