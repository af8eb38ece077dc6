"""A test-only writer of small legacy GGML-family files, from the format facts.

It writes llama.cpp's containers (unversioned GGML, GGMF v1, GGJT v1-v3) from the
weights of a known tiny Llama (the shapes of `tiny_model.py`), encoded as F32, F16,
Q4_0, Q5_0, Q8_0 or Q6_K; a complete tiny GPT-2 in ggml's gpt-2 layout, with a
byte-level BPE vocabulary trained here (`write_gpt2_model`); and the look-alikes the
converter must refuse: ggml's gpt-2, gpt-j and gpt-neox example files with made-up
token lists, rwkv.cpp files and QK_K=64 K-quants.

Layout (all little-endian): magic, [u32 version], u32 hyperparameters, the vocabulary
(u32 length, bytes, [f32 score]), then tensor records until the end: u32 n_dims,
u32 name length, u32 type, n_dims u32 sizes (fastest-varying first), the name, [GGJT:
zero padding to an absolute offset that is a multiple of 32], the data.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize

MAGICS = {"GGML": b"lmgg", "GGMF": b"fmgg", "GGJT": b"tjgg"}
WORDS = [b" hello", b" world", b" the", b" end"]
# llama.cpp file type ("mostly X") for a file whose 2-D weights are all of one tensor type.
FILE_TYPE_OF = {T.F32: 0, T.F16: 1, T.Q4_0: 2, T.Q4_1: 3, T.Q8_0: 7, T.Q5_0: 8, T.Q4_K: 15, T.Q6_K: 18}


@dataclass(frozen=True)
class TinyShape:
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_layer: int = 2


SMALL = TinyShape()
# K-quant blocks hold 256 values, so every row must be a multiple of 256 long.
WIDE = TinyShape(n_embd=256, n_head=4, n_head_kv=2, n_ff=512)


@dataclass(frozen=True)
class Record:
    name: str
    ne: tuple[int, ...]  # ggml order: fastest-varying first
    ggml_type: int
    data: bytes


def legacy_vocab() -> list[tuple[bytes, float]]:
    """<unk>, <s>, </s>, the 256 raw bytes, then space-prefixed words (263 tokens)."""
    vocab = [(b"<unk>", 0.0), (b"<s>", 0.0), (b"</s>", 0.0)]
    vocab += [(bytes([b]), 0.0) for b in range(256)]
    vocab += [(word, -float(i + 1)) for i, word in enumerate(WORDS)]
    return vocab


def tiny_weights(shape: TinyShape = SMALL, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights under legacy names, in numpy shapes, in llama.cpp's file order."""
    rng = np.random.default_rng(seed)
    n_vocab = len(legacy_vocab())
    kv = shape.n_embd // shape.n_head * shape.n_head_kv

    def weight(*dims: int) -> np.ndarray:
        return (rng.standard_normal(dims) * 0.2).astype(np.float32)

    def norm() -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(shape.n_embd)).astype(np.float32)

    weights = {"tok_embeddings.weight": weight(n_vocab, shape.n_embd), "norm.weight": norm()}
    weights["output.weight"] = weight(n_vocab, shape.n_embd)
    for i in range(shape.n_layer):
        prefix = f"layers.{i}."
        weights[prefix + "attention.wq.weight"] = weight(shape.n_embd, shape.n_embd)
        weights[prefix + "attention.wk.weight"] = weight(kv, shape.n_embd)
        weights[prefix + "attention.wv.weight"] = weight(kv, shape.n_embd)
        weights[prefix + "attention.wo.weight"] = weight(shape.n_embd, shape.n_embd)
        weights[prefix + "feed_forward.w1.weight"] = weight(shape.n_ff, shape.n_embd)
        weights[prefix + "feed_forward.w2.weight"] = weight(shape.n_embd, shape.n_ff)
        weights[prefix + "feed_forward.w3.weight"] = weight(shape.n_ff, shape.n_embd)
        weights[prefix + "attention_norm.weight"] = norm()
        weights[prefix + "ffn_norm.weight"] = norm()
    return weights


def tensor_type(array: np.ndarray, weight_type: T) -> T:
    """Norms stay F32 in every file type; matrices get the file's type."""
    return T.F32 if array.ndim == 1 else weight_type


def encode(array: np.ndarray, ggml_type: T) -> np.ndarray:
    """The tensor's bytes as ggml stores them: floats, or uint8 blocks shaped (rows, bytes)."""
    if ggml_type == T.F32:
        return array.astype(np.float32)
    if ggml_type == T.F16:
        return array.astype(np.float16)
    if ggml_type == T.Q6_K:
        return quantize_q6_k(array)
    return quantize(array, ggml_type)


def quantize_q6_k(array: np.ndarray) -> np.ndarray:
    """Q6_K blocks (256 values, 210 bytes): 6-bit values, 16 int8 sub-scales, an f16 scale.

    gguf-py cannot quantize K-quants, so this does it plainly: each 16-value group gets
    an int8 scale relative to the block's f16 scale, each value a 6-bit step of it.
    Bytes: 128 low nibbles, 64 bytes of high 2-bit pairs, 16 scales, the f16 scale.
    """
    rows = array.reshape(-1, 256).astype(np.float32)
    groups = rows.reshape(-1, 16, 16)
    group_scale = np.abs(groups).max(axis=-1) / 31.0
    d = (group_scale.max(axis=-1) / 127.0).astype(np.float16)
    d32 = d.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        scales = np.where(d32[:, None] > 0, np.round(group_scale / d32[:, None]), 0)
        scales = np.clip(scales, -128, 127).astype(np.int8)
        step = d32[:, None] * scales.astype(np.float32)
        q = np.where(step[..., None] > 0, np.round(groups / step[..., None]), 0)
    q = (np.clip(q, -32, 31) + 32).astype(np.uint8).reshape(-1, 2, 4, 32)  # (block, half, quarter, 32)
    low, high = q & 0x0F, q >> 4
    ql = np.concatenate([low[:, :, 0] | (low[:, :, 2] << 4), low[:, :, 1] | (low[:, :, 3] << 4)], axis=-1)
    qh = high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)
    blocks = np.concatenate(
        [ql.reshape(-1, 128), qh.reshape(-1, 64), scales.view(np.uint8), d.reshape(-1, 1).view(np.uint8)],
        axis=-1,
    )
    return blocks.reshape(array.shape[0], -1)


def llama_records(weights: dict[str, np.ndarray], weight_type: T) -> list[Record]:
    records = []
    for name, array in weights.items():
        ggml_type = tensor_type(array, weight_type)
        data = encode(array, ggml_type).tobytes()
        records.append(Record(name, tuple(reversed(array.shape)), int(ggml_type), data))
    return records


def write_legacy(
    path: Path,
    *,
    magic: bytes,
    version: int | None,
    hparams: Sequence[int],
    vocab: Sequence[tuple[bytes, float]] | None,
    scores: bool,
    records: Sequence[Record],
    aligned: bool,
    repeat_vocab_count: bool = False,
) -> Path:
    """Write any file of the GGML family from its parts."""
    out = bytearray(magic)
    if version is not None:
        out += struct.pack("<I", version)
    out += struct.pack(f"<{len(hparams)}i", *hparams)
    if vocab is not None:
        if repeat_vocab_count:
            out += struct.pack("<i", len(vocab))
        for text, score in vocab:
            out += struct.pack("<I", len(text)) + text
            if scores:
                out += struct.pack("<f", score)
    for record in records:
        name = record.name.encode()
        out += struct.pack("<3I", len(record.ne), len(name), record.ggml_type)
        out += struct.pack(f"<{len(record.ne)}I", *record.ne) + name
        if aligned:
            out += b"\0" * (-len(out) % 32)
        out += record.data
    path.write_bytes(bytes(out))
    return path


def write_llama(
    path: Path,
    shape: TinyShape = SMALL,
    *,
    weight_type: T = T.Q8_0,
    container: str = "GGJT",
    version: int | None = 3,
    seed: int = 0,
    file_type: int | None = None,
    records: Sequence[Record] | None = None,
) -> Path:
    """A tiny Llama in a llama.cpp container. Unversioned GGML stores no scores."""
    vocab = legacy_vocab()
    hparams = [
        len(vocab),
        shape.n_embd,
        256,  # n_mult: only used to derive n_ff, which the converter reads from the tensors
        shape.n_head,
        shape.n_layer,
        shape.n_embd // shape.n_head,
        FILE_TYPE_OF[weight_type] if file_type is None else file_type,
    ]
    return write_legacy(
        path,
        magic=MAGICS[container],
        version=None if container == "GGML" else version,
        hparams=hparams,
        vocab=vocab,
        scores=container != "GGML",
        records=records if records is not None else llama_records(tiny_weights(shape, seed), weight_type),
        aligned=container == "GGJT",
    )


def write_qk_k_64(path: Path, shape: TinyShape = WIDE) -> Path:
    """A GGJT v3 Q4_K file from a QK_K=64 build: 64-value blocks of 38 bytes (random)."""
    rng = np.random.default_rng(1)
    records = []
    for name, array in tiny_weights(shape).items():
        if array.ndim == 1:
            records.append(Record(name, (array.shape[0],), 0, array.tobytes()))
            continue
        n_bytes = array.size // 64 * 38
        data = rng.integers(0, 256, n_bytes, dtype=np.uint8).tobytes()
        records.append(Record(name, tuple(reversed(array.shape)), int(T.Q4_K), data))
    return write_llama(path, shape, weight_type=T.Q4_K, records=records)


def _f32_records(specs: Sequence[tuple[str, tuple[int, ...]]]) -> list[Record]:
    records = []
    for name, ne in specs:
        count = int(np.prod(ne))
        records.append(Record(name, ne, 0, np.zeros(count, dtype=np.float32).tobytes()))
    return records


def _bpe_vocab(n_vocab: int) -> list[tuple[bytes, float]]:
    return [(f"t{i}".encode(), 0.0) for i in range(n_vocab)]


def write_gpt2(path: Path, n_vocab: int = 300, n_embd: int = 32, n_ctx: int = 64) -> Path:
    """ggml's examples/gpt-2 layout (AI Dungeon 2 Classic): n_vocab repeated, no scores, no padding.

    A look-alike that must be refused: its made-up token list ("t0", "t1", ...) is not
    GPT-2's, and it holds only a few tensors. `write_gpt2_model` writes a complete one.
    """
    specs: list[tuple[str, tuple[int, ...]]] = [
        ("model/ln_f/g", (n_embd,)),
        ("model/ln_f/b", (n_embd,)),
        ("model/wte", (n_embd, n_vocab)),
    ]
    specs += [("model/wpe", (n_embd, n_ctx)), ("model/h0/ln_1/g", (n_embd,))]
    specs += [("model/h0/attn/c_attn/w", (n_embd, 3 * n_embd))]
    hparams = [n_vocab, n_ctx, n_embd, 4, 1, 2001]  # file type F16 with quantization version 2
    return write_legacy(
        path,
        magic=MAGICS["GGML"],
        version=None,
        hparams=hparams,
        vocab=_bpe_vocab(n_vocab),
        scores=False,
        records=_f32_records(specs),
        aligned=False,
        repeat_vocab_count=True,
    )


def write_gptj(path: Path, n_vocab: int = 300, n_embd: int = 32) -> Path:
    """ggml's examples/gpt-j layout: like gpt-2 plus n_rot."""
    specs: list[tuple[str, tuple[int, ...]]] = [
        ("transformer.wte.weight", (n_embd, n_vocab)),
        ("transformer.h.0.ln_1.weight", (n_embd,)),
    ]
    specs += [("transformer.h.0.attn.q_proj.weight", (n_embd, n_embd))]
    return write_legacy(
        path,
        magic=MAGICS["GGML"],
        version=None,
        hparams=[n_vocab, 64, n_embd, 4, 1, 8, 1],
        vocab=_bpe_vocab(n_vocab),
        scores=False,
        records=_f32_records(specs),
        aligned=False,
        repeat_vocab_count=True,
    )


def write_neox(path: Path, n_vocab: int = 300, n_embd: int = 32) -> Path:
    """ggml's examples/gpt-neox layout: n_rot and par_res, the vocabulary count not repeated."""
    specs: list[tuple[str, tuple[int, ...]]] = [("gpt_neox.embed_in.weight", (n_embd, n_vocab))]
    specs += [("gpt_neox.layers.0.input_layernorm.weight", (n_embd,))]
    return write_legacy(
        path,
        magic=MAGICS["GGML"],
        version=None,
        hparams=[n_vocab, 64, n_embd, 4, 1, 8, 1, 1],
        vocab=_bpe_vocab(n_vocab),
        scores=False,
        records=_f32_records(specs),
        aligned=False,
    )


def write_rwkv(path: Path, n_vocab: int = 300, n_embd: int = 32) -> Path:
    """rwkv.cpp's format: the GGMF magic with version 101, four hyperparameters, no vocabulary."""
    specs: list[tuple[str, tuple[int, ...]]] = [
        ("emb.weight", (n_embd, n_vocab)),
        ("blocks.0.ln1.weight", (n_embd,)),
    ]
    specs += [("blocks.0.ln1.bias", (n_embd,))]
    return write_legacy(
        path,
        magic=MAGICS["GGMF"],
        version=101,
        hparams=[n_vocab, n_embd, 1, 0],
        vocab=None,
        scores=False,
        records=_f32_records(specs),
        aligned=False,
    )


# -- a complete tiny GPT-2 in ggml's examples/gpt-2 layout ------------------------------

END_OF_TEXT = b"<|endoftext|>"
# The text the tiny tokenizer is trained on: enough repetition for a few dozen merges.
GPT2_CORPUS = (
    "You are standing in an open field west of a white house. The house has a boarded front door. "
    "You open the door and enter the house. There is a lamp here. You take the lamp and light it. "
    "The dragon is sleeping in the cave. You attack the dragon with the sword. The dragon wakes. "
    "You are in the kitchen of the white house. A table seems to have been used recently. 2019 2020"
)
_GPT2_WORD = re.compile(rb" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+")


@dataclass(frozen=True)
class Gpt2Shape:
    n_embd: int = 64
    n_head: int = 4
    n_layer: int = 2
    n_ctx: int = 64

    @property
    def n_ff(self) -> int:
        return 4 * self.n_embd


GPT2_SMALL = Gpt2Shape()


def gpt2_byte_order() -> list[int]:
    """The bytes in the order GPT-2 numbers them: the printable Latin-1 ones, then the rest."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    return printable + [b for b in range(256) if b not in printable]


def train_gpt2_vocab(
    n_merges: int = 40, corpus: str = GPT2_CORPUS
) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """A rank-ordered byte-level BPE vocabulary, trained plainly on `corpus`.

    Returns the tokens in id order (256 bytes, one token per merge, <|endoftext|>) and
    the merges in rank order: token 256 + i is merge i joined, as in GPT-2.
    """
    words: dict[tuple[bytes, ...], int] = {}
    for word in _GPT2_WORD.findall(corpus.encode()):
        key = tuple(word[i : i + 1] for i in range(len(word)))
        words[key] = words.get(key, 0) + 1
    merges: list[tuple[bytes, bytes]] = []
    for _ in range(n_merges):
        pairs: dict[tuple[bytes, bytes], int] = {}
        for parts, count in words.items():
            for pair in zip(parts, parts[1:], strict=False):
                pairs[pair] = pairs.get(pair, 0) + count
        best = max(pairs, key=lambda pair: (pairs[pair], pair))
        merges.append(best)
        words = {_join(parts, best): count for parts, count in words.items()}
    tokens = [bytes([b]) for b in gpt2_byte_order()] + [a + b for a, b in merges] + [END_OF_TEXT]
    assert len(set(tokens)) == len(tokens), "the corpus made one token twice; change it"
    return tokens, merges


def _join(parts: tuple[bytes, ...], pair: tuple[bytes, bytes]) -> tuple[bytes, ...]:
    out: list[bytes] = []
    i = 0
    while i < len(parts):
        if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
            out.append(parts[i] + parts[i + 1])
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return tuple(out)


def gpt2_weights(
    shape: Gpt2Shape, n_vocab: int, *, lm_head: bool = False, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random GPT-2 weights under ggml's names, in numpy shapes (ggml sizes reversed).

    The projection matrices are stored as ggml's converter left them: (outputs, inputs).
    """
    rng = np.random.default_rng(seed)
    e, f = shape.n_embd, shape.n_ff

    def weight(*dims: int) -> np.ndarray:
        return (rng.standard_normal(dims) * 0.2).astype(np.float32)

    def gain() -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(e)).astype(np.float32)

    weights = {"model/ln_f/g": gain(), "model/ln_f/b": weight(e), "model/wte": weight(n_vocab, e)}
    weights["model/wpe"] = weight(shape.n_ctx, e)
    if lm_head:
        weights["model/lm_head"] = weight(n_vocab, e)
    for i in range(shape.n_layer):
        prefix = f"model/h{i}/"
        weights[prefix + "ln_1/g"], weights[prefix + "ln_1/b"] = gain(), weight(e)
        weights[prefix + "attn/c_attn/w"], weights[prefix + "attn/c_attn/b"] = weight(3 * e, e), weight(3 * e)
        weights[prefix + "attn/c_proj/w"], weights[prefix + "attn/c_proj/b"] = weight(e, e), weight(e)
        weights[prefix + "ln_2/g"], weights[prefix + "ln_2/b"] = gain(), weight(e)
        weights[prefix + "mlp/c_fc/w"], weights[prefix + "mlp/c_fc/b"] = weight(f, e), weight(f)
        weights[prefix + "mlp/c_proj/w"], weights[prefix + "mlp/c_proj/b"] = weight(e, f), weight(e)
    return weights


def gpt2_tensor_type(name: str, array: np.ndarray, weight_type: T) -> T:
    """As ggml's gpt-2 tools stored them: vectors and the position embedding in F32."""
    return T.F32 if array.ndim == 1 or name == "model/wpe" else weight_type


def write_gpt2_model(
    path: Path,
    shape: Gpt2Shape = GPT2_SMALL,
    *,
    weight_type: T = T.F32,
    lm_head: bool = False,
    seed: int = 0,
    tokens: Sequence[bytes] | None = None,
    drop: Sequence[str] = (),
    file_type: int | None = None,
) -> Path:
    """A complete tiny GPT-2 in ggml's gpt-2 layout, as AI Dungeon 2 Classic is stored.

    `tokens` replaces the trained vocabulary; `drop` leaves tensors out. The file type
    carries ggml's quantization version (2) for quantized files, as ggml's quantize
    tool wrote it, unless `file_type` gives the header value.
    """
    vocab = list(tokens) if tokens is not None else train_gpt2_vocab()[0]
    records = []
    for name, array in gpt2_weights(shape, len(vocab), lm_head=lm_head, seed=seed).items():
        if name in drop:
            continue
        kind = gpt2_tensor_type(name, array, weight_type)
        records.append(Record(name, tuple(reversed(array.shape)), int(kind), encode(array, kind).tobytes()))
    if file_type is None:
        file_type = FILE_TYPE_OF[weight_type] + (0 if weight_type in (T.F32, T.F16) else 2000)
    return write_legacy(
        path,
        magic=MAGICS["GGML"],
        version=None,
        hparams=[len(vocab), shape.n_ctx, shape.n_embd, shape.n_head, shape.n_layer, file_type],
        vocab=[(token, 0.0) for token in vocab],
        scores=False,
        records=records,
        aligned=False,
        repeat_vocab_count=True,
    )
