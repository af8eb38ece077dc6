"""The header checks that refuse a model file llama.cpp would abort on (engine/gguf/checks.py).

Each broken file here is one the model-file fuzz found to kill the process when loaded
unchecked; `test_model_fuzz.py` shows each one really does. These tests only read
headers, so they need no llama.cpp.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalog.library import Library
from engine.errors import CorruptModelError
from engine.gguf import model_info, read_header
from tiny_model import N_LAYER, vocabulary, write_tiny_llama


def without_tokens(*texts: str) -> tuple[list[str], list[float], list[int]]:
    tokens, scores, types = vocabulary()
    keep = [i for i, token in enumerate(tokens) if token not in texts]
    return [tokens[i] for i in keep], [scores[i] for i in keep], [types[i] for i in keep]


def with_tokens(texts: dict[int, str]) -> tuple[list[str], list[float], list[int]]:
    tokens, scores, types = vocabulary()
    for index, text in texts.items():
        tokens[index] = text
    return tokens, scores, types


def ascii_bytes_as_raw() -> tuple[list[str], list[float], list[int]]:
    """Byte tokens 0x01…0x7F as the characters themselves, typed NORMAL (llama.cpp refuses a
    BYTE token that is not spelled <0xNN>)."""
    tokens, scores, types = vocabulary()
    for i, token in enumerate(tokens):
        if token.startswith("<0x") and 0 < int(token[3:5], 16) < 0x80:
            tokens[i], types[i] = chr(int(token[3:5], 16)), 1
    return tokens, scores, types


ALL_BYTES = tuple(f"<0x{b:02X}>" for b in range(256))

# name: (what write_tiny_llama gets, words the refusal must contain)
BROKEN: dict[str, tuple[dict[str, Any], str]] = {
    "no byte tokens": ({"vocab": without_tokens(*ALL_BYTES)}, "lacks 243 of the byte tokens"),
    "no newline byte token": (
        {"vocab": without_tokens("<0x0A>")},
        "lacks 1 of the byte tokens (<0x00> to <0xFF>)",
    ),
    "no byte tokens above 0x7F": ({"vocab": without_tokens(*ALL_BYTES[0x80:])}, "(<0x80>, <0x81>, <0x82>…)"),
    "a token twice": ({"vocab": with_tokens({262: "▁hello"})}, "the token '▁hello' twice (ids 259 and 262)"),
    "an empty token, and one named as llama.cpp renames it": (
        {"vocab": with_tokens({261: "", 262: "[EMPTY_261]"})},
        "the token '[EMPTY_261]' twice (ids 261 and 262)",
    ),
    "WordPiece with byte tokens": ({"metadata": {"tokenizer.ggml.model": "bert"}}, "WordPiece (bert)"),
    "no layers": ({"metadata": {"llama.block_count": 0}}, "0 layers (block_count)"),
    "513 layers": ({"metadata": {"llama.block_count": 513}}, "handles 1 to 512"),
    "more prediction layers than layers": (
        {"metadata": {"llama.nextn_predict_layers": 3}},
        "nextn_predict_layers",
    ),
    "too many experts": (
        {"metadata": {"llama.expert_count": 1025, "llama.expert_used_count": 1}},
        "1025 experts (expert_count), and llama.cpp handles up to 1024",
    ),
    "experts used without experts": ({"metadata": {"llama.expert_used_count": 2}}, "to 2 experts"),
    "experts used per layer, one too many": (
        {"metadata": {"llama.expert_count": 4, "llama.expert_used_count": [2, 5]}},
        "to 5 experts (expert_used_count) but has 4",
    ),
    "experts never used": ({"metadata": {"llama.expert_count": 8}}, "to none of them"),
    "expert groups without experts": ({"metadata": {"llama.expert_group_count": 2}}, "but no experts"),
    "expert groups that do not divide": (
        {"metadata": {"llama.expert_count": 8, "llama.expert_used_count": 2, "llama.expert_group_count": 3}},
        "do not fit together",
    ),
    "unknown rope scaling": ({"metadata": {"llama.rope.scaling.type": "YaRN"}}, "rope scaling type 'YaRN'"),
    "negative epsilon": (
        {"metadata": {"llama.attention.layer_norm_rms_epsilon": -1e-5}},
        "must be zero or more",
    ),
    "NaN epsilon": ({"metadata": {"llama.attention.layer_norm_rms_epsilon": math.nan}}, "is nan"),
    "a layer without key/value heads": (
        {"metadata": {"llama.attention.head_count_kv": [2, 0]}},
        "layer 1 has attention weights but no key/value heads",
    ),
    "per-layer heads the weights do not fit": (
        {"metadata": {"llama.attention.head_count_kv": [2, 1]}},
        "head count for layer 1 (1, attention.head_count_kv) does not match the size of blk.1.attn_k",
    ),
    "data aligned to 8 bytes": (
        {"alignment": 8},
        "does not start on a 32-byte boundary (general.alignment is 8)",
    ),
    "an F16 norm": (
        {"dtypes": {"blk.0.attn_norm.weight": np.float16}},
        "blk.0.attn_norm.weight is stored as F16",
    ),
    "an I32 weight": ({"dtypes": {"blk.1.ffn_up.weight": np.int32}}, "blk.1.ffn_up.weight is stored as I32"),
    "an F64 embedding": ({"dtypes": {"token_embd.weight": np.float64}}, "token_embd.weight is stored as F64"),
}

# Unusual but sound: llama.cpp loads and runs these, so Hearth must not refuse them.
SOUND: dict[str, dict[str, Any]] = {
    "the tiny model": {},
    "ASCII byte tokens spelled as the bytes": {"vocab": ascii_bytes_as_raw()},
    "no byte tokens that UTF-8 never uses": {"vocab": without_tokens("<0xC0>", "<0xC1>", *ALL_BYTES[0xF5:])},
    "known rope scalings": {
        "metadata": {"llama.rope.scaling.type": "yarn", "llama.rope.scaling.factor": 4.0}
    },
    "rope scaling none": {"metadata": {"llama.rope.scaling.type": "none"}},
    "zero epsilon": {"metadata": {"llama.attention.layer_norm_rms_epsilon": 0.0}},
    "the most layers llama.cpp has": {"metadata": {"llama.block_count": 512}},
    "experts that fit": {
        "metadata": {
            "llama.expert_count": 8,
            "llama.expert_used_count": 2,
            "llama.expert_group_count": 4,
            "llama.expert_group_used_count": 2,
        }
    },
    "per-layer heads that are all the same": {"metadata": {"llama.attention.head_count_kv": [2, 2]}},
    "data aligned to 64 bytes": {"alignment": 64},
    "F16 weights": {"dtypes": {"blk.0.attn_q.weight": np.float16, "output.weight": np.float16}},
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_refused_with_a_plain_reason(tmp_path: Path, name: str) -> None:
    kwargs, words = BROKEN[name]
    path = write_tiny_llama(tmp_path / "broken.gguf", **kwargs)
    with pytest.raises(CorruptModelError) as refused:
        read_header(path)
    message = str(refused.value)
    assert words in message
    assert message.startswith("broken.gguf cannot be loaded: ")
    assert "llama.cpp would crash on this file" in message and "Download the model again" in message


@pytest.mark.parametrize("name", list(SOUND))
def test_sound_files_pass(tmp_path: Path, name: str) -> None:
    header = read_header(write_tiny_llama(tmp_path / "sound.gguf", **SOUND[name]))
    assert len(header.tensors) == 3 + 9 * N_LAYER


def test_the_vocabulary_is_kept_as_bytes(tiny_gguf: Path) -> None:
    header = read_header(tiny_gguf)
    assert header.tokens is not None and header.token_types is not None
    assert header.tokens[:4] == [b"<unk>", b"<s>", b"</s>", b"<0x00>"]
    assert header.token_types[:4] == [2, 3, 3, 6]
    assert header.array_types["tokenizer.ggml.tokens"] == 8  # strings


def test_byte_tokens_may_be_the_raw_bytes(tmp_path: Path) -> None:
    """llama.cpp falls back on the byte itself as a token; NUL cannot be one (C strings)."""
    tokens, scores, types = SOUND["ASCII byte tokens spelled as the bytes"]["vocab"]
    assert "\n" in tokens and "<0x0A>" not in tokens
    read_header(write_tiny_llama(tmp_path / "raw.gguf", vocab=(tokens, scores, types)))
    nul_as_raw = ["\0" if t == "<0x00>" else t for t in vocabulary()[0]]
    with pytest.raises(CorruptModelError, match=r"lacks 1 of the byte tokens .*\(<0x00>…\)"):
        read_header(write_tiny_llama(tmp_path / "nul.gguf", vocab=(nul_as_raw, scores, types)))


def test_other_tokenizers_need_no_byte_tokens(tmp_path: Path) -> None:
    vocab = without_tokens(*ALL_BYTES)
    for model in ("gpt2", "t5"):
        path = write_tiny_llama(
            tmp_path / f"{model}.gguf", vocab=vocab, metadata={"tokenizer.ggml.model": model}
        )
        read_header(path)


def test_the_library_lists_a_refused_file_with_its_reason(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    write_tiny_llama(models / "fine.gguf")
    write_tiny_llama(models / "bytes-lost.gguf", vocab=without_tokens(*ALL_BYTES))
    items = {item.path.name: item for item in Library(models, tmp_path / "added.json").items()}
    assert items["fine.gguf"].usable
    assert not items["bytes-lost.gguf"].usable
    assert "lacks 243 of the byte tokens" in items["bytes-lost.gguf"].error


@pytest.mark.parametrize(
    "metadata",
    [
        {"llama.context_length": [2048, 2048]},
        {"llama.block_count": "two"},
        {"llama.embedding_length": math.nan},
    ],
)
def test_odd_value_types_never_break_the_facts(tmp_path: Path, metadata: dict[str, Any]) -> None:
    """llama.cpp refuses these with an error of its own; reading the facts must not raise."""
    info = model_info(path := write_tiny_llama(tmp_path / "odd.gguf", metadata=metadata), read_header(path))
    assert info.architecture == "llama"


@pytest.mark.parametrize("alignment", [0, 3])
def test_an_alignment_that_is_no_power_of_two_is_damage(tmp_path: Path, alignment: int) -> None:
    path = write_tiny_llama(tmp_path / "odd.gguf", metadata={"general.alignment": alignment})
    with pytest.raises(CorruptModelError, match="is not a power of two"):
        read_header(path)


@pytest.mark.gemma
def test_the_bundled_model_passes() -> None:
    """A real 262,144-token SentencePiece vocabulary: every byte token, no duplicates."""
    from catalog.bundled import bundled_model_path

    header = read_header(bundled_model_path())
    assert header.tokens is not None and len(header.tokens) == 262_144
