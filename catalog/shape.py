"""A model's shape, for the memory arithmetic of `catalog.fit`.

From a GGUF file's header the shape is exact: every tensor's size, type and place in
the file, and the attention's real head sizes (`attention.key_length`: Gemma 3's heads
are 256 wide, not n_embd / n_head). Before a download only the catalog's facts are
known, and the layers are taken to be equal in size.

The sizes follow how llama.cpp lays a model out:

- the repeating layers (`blk.N.*`) go to the GPU from the last one down;
- the token embeddings stay on the CPU; the output layer goes to the GPU only with all
  repeating layers (llama.cpp counts it as one more layer: "41/41" for 40 blocks), and a
  model without its own output matrix then gets a GPU copy of the embeddings;
- on x86-64 and ARM CPUs, Q4_0, Q4_K and IQ4_NL matrices are copied into a rearranged
  ("repacked") form for faster math, while the file stays memory-mapped beside them.
"""

from __future__ import annotations

import math
import platform
import re
from dataclasses import dataclass
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from catalog.entries import KVFacts
from engine.gguf import GGUFHeader

F32 = 4
REPACKED = frozenset({GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_K, GGMLQuantizationType.IQ4_NL})
REPACK_ROWS = 8  # rows are interleaved in groups of 8; other matrices stay as they are
REPACK_MACHINES = frozenset({"x86_64", "amd64", "aarch64", "arm64"})
# Guesses for a catalog model, whose file is not here yet: Llama-family vocabulary and
# feed-forward width (Llama 2: 11008 for 4096 wide, 13824 for 5120).
GUESS_VOCAB = 32000
GUESS_FF_RATIO = 2.7
_LAYER = re.compile(r"blk\.(\d+)\.")
_CACHE_TYPES = {"f16": GGMLQuantizationType.F16, "q8_0": GGMLQuantizationType.Q8_0,
                "q4_0": GGMLQuantizationType.Q4_0}  # fmt: skip


@dataclass(frozen=True)
class Weight:
    """One tensor of the file: where it sits, how big, and which layer it belongs to."""

    name: str
    layer: int | None  # the repeating layer; None for the embeddings and the output layer
    offset: int
    size: int
    repackable: bool  # the CPU keeps a rearranged copy of it


@dataclass(frozen=True)
class ModelShape:
    """The numbers a model's memory depends on."""

    architecture: str
    n_layer: int
    n_embd: int
    n_head: int
    kv_heads: tuple[int, ...]  # per layer (0 for a layer without attention)
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    n_vocab: int
    context_length: int
    layer_bytes: tuple[int, ...]  # the weights of each repeating layer
    input_bytes: int  # token embeddings and other tensors that stay on the CPU
    output_bytes: int  # the output norm and matrix (the embeddings' size when tied)
    output_tied: bool = False  # no output matrix of its own: it reuses the embeddings
    sliding_window: int = 0
    weights: tuple[Weight, ...] = ()  # empty when the shape comes from the catalog
    exact: bool = True  # from the file (True), or guessed from the catalog's facts

    @property
    def file_bytes(self) -> int:
        tied = self.output_bytes if self.output_tied else 0
        return sum(self.layer_bytes) + self.input_bytes + self.output_bytes - tied

    def kv_bytes_per_token(
        self, cache_k: str = "f16", cache_v: str = "f16", layers: range | None = None
    ) -> int:
        """KV-cache bytes one token of context costs in `layers` (all by default)."""
        chosen = layers if layers is not None else range(self.n_layer)
        return sum(
            row_bytes(cache_k, self.kv_heads[i] * self.head_dim_k)
            + row_bytes(cache_v, self.kv_heads[i] * self.head_dim_v)
            for i in chosen
        )


def compute_bytes(shape: ModelShape, n_kv: int, n_ubatch: int, *, flash_attn: bool) -> int:
    """The compute buffer llama.cpp reserves: its largest step for a batch of `n_ubatch`
    tokens over `n_kv` cells. ggml reuses a step's memory once its results are consumed,
    so the buffer is the biggest step, not the sum: the attention (its score matrix,
    n_kv × n_ubatch × n_head floats, is what flash attention avoids; the mask is one
    n_kv × n_ubatch matrix per attention kind, floats or halves with flash attention),
    the feed-forward (three n_ff-wide activations), or the logits of every token in the
    batch (n_vocab floats each)."""
    u = n_ubatch
    stream = 3 * shape.n_embd * u * F32  # the residual stream and its normed copies
    heads = max(shape.kv_heads, default=0)
    qkvo = u * F32 * (shape.n_head + heads) * (shape.head_dim_k + shape.head_dim_v)
    masks = 2 if shape.sliding_window else 1
    mask = n_kv * u * (2 if flash_attn else F32) * masks
    scores = 0 if flash_attn else n_kv * u * shape.n_head * F32
    attention = mask + scores + qkvo + stream
    feed_forward = mask + 3 * shape.n_ff * u * F32 + stream
    logits = shape.n_vocab * u * F32 + 5 * shape.n_embd * u * F32  # and the final norms
    return max(attention, feed_forward, logits)


def row_bytes(cache_type: str, n: int) -> int:
    """Bytes of a row of `n` values stored as `cache_type` (f16, q8_0, q4_0): one layer's
    keys (or values) for one token, all its KV heads together."""
    block_elems, block_bytes = GGML_QUANT_SIZES[_CACHE_TYPES[cache_type]]
    return -(-n // block_elems) * block_bytes


def repacks_here() -> bool:
    """Whether this CPU's llama.cpp build rearranges some quantized weights (x86-64, ARM)."""
    return platform.machine().lower() in REPACK_MACHINES


def shape_from_header(header: GGUFHeader) -> ModelShape | None:
    """A file's shape; None when its metadata lacks the layer count or the width."""
    n_layer = _int(header.arch_value("block_count", 0))
    n_embd = _int(header.arch_value("embedding_length", 0))
    if n_layer <= 0 or n_embd <= 0:
        return None
    n_head = _int(header.arch_value("attention.head_count", 0))
    kv = header.arch_value("attention.head_count_kv", header.arch_value("attention.head_count", 0))
    kv_heads = _per_layer(kv, n_layer)
    head_k = _int(header.arch_value("attention.key_length", 0)) or (n_embd // n_head if n_head else 0)
    head_v = _int(header.arch_value("attention.value_length", 0)) or head_k
    weights = tuple(_weight(t) for t in header.tensors)
    layer_bytes = [0] * n_layer
    input_bytes = output_bytes = 0
    for w in weights:
        if w.layer is not None and w.layer < n_layer:
            layer_bytes[w.layer] += w.size
        elif w.name.startswith("output"):
            output_bytes += w.size
        else:
            input_bytes += w.size
    tied = not any(w.name == "output.weight" for w in weights)
    if tied:  # offloaded, the output layer gets its own copy of the embeddings
        output_bytes += sum(w.size for w in weights if w.name == "token_embd.weight")
    n_vocab = header.array_lengths.get("tokenizer.ggml.tokens") or _int(header.arch_value("vocab_size", 0))
    return ModelShape(
        architecture=str(header.metadata.get("general.architecture", "")),
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        kv_heads=kv_heads,
        head_dim_k=head_k,
        head_dim_v=head_v,
        n_ff=max(_per_layer(header.arch_value("feed_forward_length", 0), n_layer), default=0),
        n_vocab=n_vocab,
        context_length=_int(header.arch_value("context_length", 0)),
        layer_bytes=tuple(layer_bytes),
        input_bytes=input_bytes,
        output_bytes=output_bytes,
        output_tied=tied,
        sliding_window=_int(header.arch_value("attention.sliding_window", 0)),
        weights=weights,
    )


def shape_from_facts(kv: KVFacts, file_bytes: int, parameters: float, context_length: int) -> ModelShape:
    """A catalog model's shape before its file is here: the vocabulary and feed-forward
    width are Llama-family guesses, and every layer is taken to weigh the same."""
    per_weight = file_bytes / parameters if parameters else 0.6
    embeddings = int(GUESS_VOCAB * kv.n_embd * per_weight)
    layers = max(0, file_bytes - 2 * embeddings)
    per_layer = layers // kv.n_layer
    return ModelShape(
        architecture="llama",
        n_layer=kv.n_layer,
        n_embd=kv.n_embd,
        n_head=kv.n_head,
        kv_heads=(kv.n_head_kv,) * kv.n_layer,
        head_dim_k=kv.head_dim,
        head_dim_v=kv.head_dim,
        n_ff=int(kv.n_embd * GUESS_FF_RATIO),
        n_vocab=GUESS_VOCAB,
        context_length=context_length,
        layer_bytes=(per_layer,) * kv.n_layer,
        input_bytes=file_bytes - per_layer * kv.n_layer - min(embeddings, file_bytes),
        output_bytes=min(embeddings, file_bytes),
        exact=False,
    )


def _weight(tensor: Any) -> Weight:
    match = _LAYER.match(tensor.name)
    rows = tensor.shape[1] if len(tensor.shape) >= 2 else 0
    try:
        kind: GGMLQuantizationType | None = GGMLQuantizationType(tensor.ggml_type)
    except ValueError:
        kind = None
    repackable = (
        kind in REPACKED
        and len(tensor.shape) == 2
        and rows % REPACK_ROWS == 0
        and not tensor.name.startswith("token_embd")  # looked up by row, never multiplied
    )
    return Weight(tensor.name, int(match[1]) if match else None, tensor.offset, tensor.n_bytes, repackable)


def _per_layer(value: Any, n_layer: int) -> tuple[int, ...]:
    if isinstance(value, list):
        numbers = [_int(v) for v in value[:n_layer]]
        return tuple(numbers + [numbers[-1] if numbers else 0] * (n_layer - len(numbers)))
    return (_int(value),) * n_layer


def _int(value: Any) -> int:
    if isinstance(value, list):
        value = value[0] if value else 0
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else 0
