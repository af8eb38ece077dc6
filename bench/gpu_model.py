"""A random-weight Llama GGUF of a realistic shape, written on the spot for the GPU benchmark.

The default shape is TinyLlama 1.1B's: 22 layers, 2048 wide, 32 query heads sharing 4
KV heads, a 5632-wide feed-forward and a 32,000-token SentencePiece vocabulary. Its
kernels, memory and output layer cost what a real 1B model's do, with nothing to
download. The text it writes is gibberish, which a speed test does not mind.

Tensors are generated and written one at a time, so memory stays at one tensor's size.
Q8_0 weights are written as blocks directly (an f16 scale, then 32 random int8s), which
takes seconds where quantizing float weights would take minutes. The vocabulary holds
`<unk>`, `<s>`, `</s>` and the 256 byte tokens llama.cpp's SentencePiece loader needs
(without them it aborts the process on the first byte it cannot map), then filler pieces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType

Q8_0_BLOCK = 32  # weights per Q8_0 (and Q4_0) block: an f16 scale, then 32 int8s (or nibbles)
Q8_0_BLOCK_BYTES = 34
Q4_0_BLOCK_BYTES = 18
WEIGHT_STD = 0.02  # the usual initialisation; keeps activations finite through every layer
FILE_TYPES = {
    "q8_0": LlamaFileType.MOSTLY_Q8_0,
    "q4_0": LlamaFileType.MOSTLY_Q4_0,
    "f16": LlamaFileType.MOSTLY_F16,
}
_BLOCKS = {
    "q8_0": (GGMLQuantizationType.Q8_0, Q8_0_BLOCK_BYTES),
    "q4_0": (GGMLQuantizationType.Q4_0, Q4_0_BLOCK_BYTES),
}


@dataclass(frozen=True)
class LlamaShape:
    """The sizes that make a Llama model what it is."""

    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    context: int = 2048
    head_dim: int = 0  # 0: n_embd / n_head; else written as attention.key_length (Gemma-style)

    @property
    def head_width(self) -> int:
        return self.head_dim or self.n_embd // self.n_head

    @property
    def kv_width(self) -> int:
        return self.head_width * self.n_head_kv

    def matrices(self) -> list[tuple[str, int, int]]:
        """Every weight matrix as (name, rows, columns), in the order they are written."""
        e, f, kv, q = self.n_embd, self.n_ff, self.kv_width, self.head_width * self.n_head
        out = [("token_embd.weight", self.n_vocab, e), ("output.weight", self.n_vocab, e)]
        for i in range(self.n_layer):
            out += [
                (f"blk.{i}.attn_q.weight", q, e),
                (f"blk.{i}.attn_k.weight", kv, e),
                (f"blk.{i}.attn_v.weight", kv, e),
                (f"blk.{i}.attn_output.weight", e, q),
                (f"blk.{i}.ffn_gate.weight", f, e),
                (f"blk.{i}.ffn_up.weight", f, e),
                (f"blk.{i}.ffn_down.weight", e, f),
            ]
        return out

    def norms(self) -> list[str]:
        return ["output_norm.weight"] + [
            f"blk.{i}.{name}" for i in range(self.n_layer) for name in ("attn_norm.weight", "ffn_norm.weight")
        ]

    def parameters(self) -> int:
        return sum(rows * cols for _, rows, cols in self.matrices()) + len(self.norms()) * self.n_embd


TINYLLAMA_1B = LlamaShape(n_layer=22, n_embd=2048, n_head=32, n_head_kv=4, n_ff=5632, n_vocab=32000)
TINY = LlamaShape(n_layer=2, n_embd=64, n_head=4, n_head_kv=2, n_ff=128, n_vocab=300, context=512)
"""The same recipe at test scale: a few hundred kilobytes, loads in hundredths of a second."""


def vocabulary(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and types: the three specials, the 256 bytes, then filler pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    if n_vocab < len(tokens):
        raise ValueError(f"A SentencePiece vocabulary needs at least {len(tokens)} tokens, not {n_vocab}.")
    tokens += [f"▁w{i}" for i in range(n_vocab - len(tokens))]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    types += [TokenType.NORMAL] * (n_vocab - len(types))
    scores = [0.0] * 259 + [-float(i) for i in range(n_vocab - 259)]
    return tokens, scores, [int(t) for t in types]


def write_llama(path: Path, shape: LlamaShape = TINYLLAMA_1B, weights: str = "q8_0", seed: int = 0) -> Path:
    """Write a random-weight Llama GGUF of `shape` to `path` and return it.

    Args:
        weights: "q8_0" (about 1.1 GB at the default shape), "q4_0" (about 0.6 GB) or "f16"
            (about 2.2 GB).
    """
    if weights not in FILE_TYPES:
        raise ValueError(f"weights must be one of {', '.join(FILE_TYPES)}, not {weights!r}")
    if weights != "f16" and any(cols % Q8_0_BLOCK for _, _, cols in shape.matrices()):
        raise ValueError(f"{weights.upper()} needs every row to be a multiple of {Q8_0_BLOCK} wide.")
    rng = np.random.default_rng(seed)
    writer = GGUFWriter(str(path), "llama")
    _metadata(writer, shape, weights)
    for name in shape.norms():
        writer.add_tensor_info(name, (shape.n_embd,), np.dtype(np.float32), shape.n_embd * 4)
    for name, rows, cols in shape.matrices():
        if weights == "f16":
            writer.add_tensor_info(name, (rows, cols), np.dtype(np.float16), rows * cols * 2)
        else:
            kind, block_bytes = _BLOCKS[weights]
            byte_shape = (rows, cols // Q8_0_BLOCK * block_bytes)
            nbytes = byte_shape[0] * byte_shape[1]
            writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _ in shape.norms():
        writer.write_tensor_data(np.ones(shape.n_embd, dtype=np.float32))
    for _, rows, cols in shape.matrices():
        if weights == "f16":
            writer.write_tensor_data(_f16(rng, rows, cols))
        else:
            writer.write_tensor_data(_quantized(rng, rows, cols, _BLOCKS[weights][1]))
    writer.close()
    return path


def _metadata(writer: GGUFWriter, shape: LlamaShape, weights: str) -> None:
    count = shape.parameters()
    label = f"{count / 1e9:.1f}B" if count >= 10**9 else f"{count / 1e6:.1f}M"
    writer.add_name(f"random-llama-{label}-{weights}")
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.head_width)
    if shape.head_dim:
        writer.add_key_length(shape.head_dim)
        writer.add_value_length(shape.head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(FILE_TYPES[weights])
    tokens, scores, types = vocabulary(shape.n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)


def _f16(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    return (rng.standard_normal((rows, cols), dtype=np.float32) * WEIGHT_STD).astype(np.float16)


def _quantized(rng: np.random.Generator, rows: int, cols: int, block_bytes: int) -> np.ndarray:
    """Q8_0 (or Q4_0) blocks of uniform int8s (or nibbles), scaled so the weights have about
    WEIGHT_STD spread."""
    blocks = np.empty((rows, cols // Q8_0_BLOCK, block_bytes), dtype=np.uint8)
    blocks[..., 2:] = rng.integers(0, 256, size=(rows, cols // Q8_0_BLOCK, block_bytes - 2), dtype=np.uint8)
    spread = 74.0 if block_bytes == Q8_0_BLOCK_BYTES else 4.6  # of a uniform int8, of a nibble - 8
    scale = np.float16(WEIGHT_STD / spread)
    blocks[..., :2] = np.frombuffer(scale.tobytes(), dtype=np.uint8)
    return blocks.reshape(rows, -1)
