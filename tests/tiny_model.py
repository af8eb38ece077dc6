"""A tiny random-weight Llama GGUF for fast tests (2 layers, 64 dims, 260 tokens).

llama.cpp loads it in a few hundredths of a second. Its text is gibberish, so tests
assert on structure: token counts, finish reasons, cache reuse and stop handling.
The SentencePiece vocabulary must hold all 256 byte tokens, or llama.cpp aborts the
process on the first byte it cannot map.

`write_tiny_llama` also writes broken variants, for the checks that refuse what llama.cpp
would abort on: another vocabulary (the embedding follows its size), metadata set,
replaced or left out, tensors stored in other types, another data alignment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFValueType, GGUFWriter, TokenType

N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_LAYER = 2
CONTEXT = 2048
WORDS = ["▁hello", "▁world", "▁the", "▁end"]


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + WORDS
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    types += [TokenType.NORMAL] * len(WORDS)
    scores = [0.0] * len(tokens)
    return tokens, scores, [int(t) for t in types]


def write_tiny_llama(
    path: Path,
    *,
    seed: int = 0,
    chat_template: str | None = None,
    name: str = "tiny-llama",
    context: int = CONTEXT,
    vocab: tuple[list[str], list[float], list[int]] | None = None,
    metadata: Mapping[str, Any] | None = None,
    dtypes: Mapping[str, type[np.generic]] | None = None,
    alignment: int | None = None,
) -> Path:
    """Write the tiny model to `path` and return it.

    Args:
        vocab: (tokens, scores, types) instead of `vocabulary()`; the embedding and output
            matrices get one row per token.
        metadata: keys to set or replace, by full name; None leaves a key out. A list is
            written as an array (of int32 when it holds ints).
        dtypes: numpy types to store tensors in, by name (weights are cast, not quantized).
        alignment: the data alignment (`general.alignment`) instead of 32.
    """
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocab or vocabulary()
    n_vocab = len(tokens)
    keys: dict[str, Any] = {
        "general.name": name,
        "llama.context_length": context,
        "llama.embedding_length": N_EMBD,
        "llama.block_count": N_LAYER,
        "llama.feed_forward_length": N_FF,
        "llama.attention.head_count": N_HEAD,
        "llama.attention.head_count_kv": N_HEAD_KV,
        "llama.rope.dimension_count": N_EMBD // N_HEAD,
        "llama.attention.layer_norm_rms_epsilon": 1e-5,
        "general.file_type": 0,  # ALL_F32
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.chat_template": chat_template or None,
    }
    keys.update(metadata or {})
    writer = GGUFWriter(str(path), "llama")
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    for key, value in keys.items():
        if value is not None:
            _add(writer, key, value)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    def add(tensor: str, data: np.ndarray) -> None:
        writer.add_tensor(tensor, data.astype((dtypes or {}).get(tensor, data.dtype)))

    kv = N_EMBD // N_HEAD * N_HEAD_KV
    add("token_embd.weight", weight(n_vocab, N_EMBD))
    add("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    add("output.weight", weight(n_vocab, N_EMBD))
    for i in range(N_LAYER):
        add(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        add(f"blk.{i}.attn_q.weight", weight(N_EMBD, N_EMBD))
        add(f"blk.{i}.attn_k.weight", weight(kv, N_EMBD))
        add(f"blk.{i}.attn_v.weight", weight(kv, N_EMBD))
        add(f"blk.{i}.attn_output.weight", weight(N_EMBD, N_EMBD))
        add(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        add(f"blk.{i}.ffn_gate.weight", weight(N_FF, N_EMBD))
        add(f"blk.{i}.ffn_up.weight", weight(N_FF, N_EMBD))
        add(f"blk.{i}.ffn_down.weight", weight(N_EMBD, N_FF))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _add(writer: GGUFWriter, key: str, value: Any) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif value and all(isinstance(v, int) for v in value):
        writer.add_key_value(key, list(value), GGUFValueType.ARRAY, sub_type=GGUFValueType.INT32)
    else:
        writer.add_array(key, list(value))
