"""Mutated tiny GGUF files, and a runner that loads each one the way Hearth does, in a child.

A mutant is the tiny llama GGUF of `tiny_model.py` with one to three changes to its
header values, vocabulary, tensor table, tensor data or raw bytes. `write_mutant(seed,
index, path)` writes the same file every time, so a failure names its seed and index
and reproduces alone:

    .venv/bin/python tests/gguf_fuzz.py --seed 0 --count 1000      # a full run
    .venv/bin/python tests/gguf_fuzz.py --seed 0 --only 417 --keep  # one mutant, file kept

`ForkRunner` starts one server process that imports llama_cpp once and forks a child per
file. The child does what the app does: the header check and `ModelManager.load`, the
special tokens, one short generation, unload. A child that dies of a signal (llama.cpp
aborting) is reported with the end of its stderr. `--raw` switches Hearth's pre-load
checks (engine/gguf_checks.py) off in the child, to count what they prevent.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import re
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType  # noqa: E402

from tiny_model import write_tiny_llama  # noqa: E402

# -- a GGUF file as editable parts ------------------------------------------------------

_FORMATS = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
_INT_KINDS = [k for k, f in _FORMATS.items() if f[-1] in "BbHhIiQq"]
_FLOAT_KINDS = [GGUFValueType.FLOAT32, GGUFValueType.FLOAT64]
S, A = GGUFValueType.STRING, GGUFValueType.ARRAY
U32, I32, F32 = GGUFValueType.UINT32, GGUFValueType.INT32, GGUFValueType.FLOAT32


@dataclass
class Field:
    key: str
    kind: int
    value: Any  # a number, a str or bytes, or a list for an array
    item_kind: int = 0  # the element type of an array
    count: int | None = None  # an array length to write instead of the real one


@dataclass
class Tensor:
    name: str
    shape: list[int]  # ggml order: ne0 first
    ggml_type: int
    offset: int


@dataclass
class Parts:
    version: int
    fields: list[Field]
    tensors: list[Tensor]
    data: bytes
    pad_to: int = 32  # the alignment the file is really laid out with
    n_tensors: int | None = None  # counts to write instead of the real ones
    n_kv: int | None = None
    originals: dict[str, bytes] = field(default_factory=dict)  # each tensor's bytes, by name

    def get(self, key: str) -> Field | None:
        return next((f for f in self.fields if f.key == key), None)

    def n_vocab(self) -> int:
        tokens = self.get("tokenizer.ggml.tokens")
        return len(tokens.value) if tokens and isinstance(tokens.value, list) else 0


def read_parts(path: Path) -> Parts:
    reader = GGUFReader(str(path))
    fields = []
    for key, item in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        kind = int(item.types[0])
        value = item.contents()
        fields.append(Field(key, kind, value, int(item.types[1]) if kind == A else 0))
    raw = path.read_bytes()
    tensors, originals = [], {}
    for t in reader.tensors:
        offset = int(t.data_offset) - reader.data_offset
        tensors.append(Tensor(t.name, [int(d) for d in t.shape], int(t.tensor_type), offset))
        originals[t.name] = raw[t.data_offset : t.data_offset + int(t.n_bytes)]
    return Parts(3, fields, tensors, raw[reader.data_offset :], originals=originals)


def _wrap(kind: int, value: Any) -> Any:
    fmt = _FORMATS[GGUFValueType(kind)]
    if fmt[-1] in "fd":
        return float(value)
    if fmt == "<?":
        return bool(value)
    bits = struct.calcsize(fmt) * 8
    value = int(value) % (1 << bits) if math.isfinite(value) else 0
    if fmt[-1].islower() and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def _as_kind(kind: int, value: Any) -> Any:
    """`value` as an element of an array of `kind`."""
    return str(value) if kind == S else _wrap(kind, value)


def _string(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack("<Q", len(raw)) + raw


def _value(kind: int, value: Any, item_kind: int = 0, count: int | None = None) -> bytes:
    if kind == S:
        return _string(value)
    if kind == A:
        items = b"".join(_value(item_kind, v) for v in value)
        return struct.pack("<IQ", item_kind, (len(value) if count is None else count) % 2**64) + items
    return struct.pack(_FORMATS[GGUFValueType(kind)], _wrap(kind, value))


def to_bytes(parts: Parts) -> bytes:
    out = bytearray(b"GGUF")
    n_tensors = len(parts.tensors) if parts.n_tensors is None else parts.n_tensors
    n_kv = len(parts.fields) if parts.n_kv is None else parts.n_kv
    out += struct.pack("<IQQ", parts.version, n_tensors % 2**64, n_kv % 2**64)
    for f in parts.fields:
        out += _string(f.key) + struct.pack("<I", f.kind) + _value(f.kind, f.value, f.item_kind, f.count)
    for t in parts.tensors:
        out += _string(t.name) + struct.pack("<I", len(t.shape))
        out += b"".join(struct.pack("<Q", d % 2**64) for d in t.shape)
        out += struct.pack("<IQ", t.ggml_type % 2**32, t.offset % 2**64)
    out += bytes(-len(out) % max(parts.pad_to, 1))
    return bytes(out + parts.data)


def tensor_bytes(shape: list[int], ggml_type: int) -> int | None:
    """The size of a tensor's data, or None for an unknown type or a shape no block fits."""
    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return None
    if not shape or shape[0] % block:
        return None
    return math.prod(shape) // block * size


def relayout(parts: Parts, rng: random.Random) -> bool:
    """Recompute every tensor's offset and bytes so the table matches the data again.

    Keeps a tensor's original bytes when the size still fits, else fills random bytes.
    Returns False (and changes nothing) when some tensor's size is unknown or too big.
    """
    sizes = [tensor_bytes(t.shape, t.ggml_type) for t in parts.tensors]
    if any(s is None or s > 8 << 20 for s in sizes):
        return False
    data = bytearray()
    for tensor, size in zip(parts.tensors, sizes, strict=True):
        assert size is not None
        data += bytes(-len(data) % max(parts.pad_to, 1))
        tensor.offset = len(data)
        original = parts.originals.get(tensor.name, b"")
        data += original if len(original) == size else rng.randbytes(size)
    parts.data = bytes(data)
    return True


# -- mutations --------------------------------------------------------------------------

INTS = [0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 255, 256, 257, 259,
        262, 263, 264, 511, 512, 1024, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
        2**63 - 1, 2**64 - 1, -1, -2]  # fmt: skip
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-38, 1e-45, 1e38, 3.4e38, math.inf, -math.inf, math.nan, 1e4, 1e6]
ARCHS = ["gpt2", "phi3", "gemma", "gemma3", "qwen2", "qwen3", "mamba", "rwkv6", "bert", "t5", "falcon",
         "starcoder", "mistral3", "granite", "deci", "llama4", "qwen3moe", "olmo2", "exaone", "plamo",
         "baichuan", "internlm2", "command-r", "", "llama ", "LLAMA", "bogus"]  # fmt: skip
TOKENIZERS = ["gpt2", "bert", "t5", "rwkv", "none", "no_vocab", "plamo2", "", "bogus", "llama"]
PRE = ["default", "llama3", "llama-bpe", "gpt-2", "qwen2", "deepseek-llm", "tekken", "bogus", ""]
TEMPLATES = ["{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", "{% for", "{{ x.y.z }}", ""]
# Keys llama.cpp reads when present, with values to try.
OPTIONAL: list[tuple[str, int, list[Any]]] = [
    ("llama.rope.freq_base", F32, FLOATS),
    ("llama.rope.freq_scale", F32, FLOATS),
    ("llama.rope.scaling.type", S, ["none", "linear", "yarn", "longrope", "bogus", ""]),
    ("llama.rope.scaling.factor", F32, FLOATS),
    ("llama.rope.scaling.original_context_length", U32, INTS),
    ("llama.rope.scaling.attn_factor", F32, FLOATS),
    ("llama.expert_count", U32, INTS),
    ("llama.expert_used_count", U32, INTS),
    ("llama.expert_shared_count", U32, INTS),
    ("llama.expert_group_count", U32, INTS),
    ("llama.expert_group_used_count", U32, INTS),
    ("llama.nextn_predict_layers", U32, INTS),
    ("llama.attention.sliding_window", U32, INTS),
    ("llama.attention.key_length", U32, INTS),
    ("llama.attention.value_length", U32, INTS),
    ("llama.attention.layer_norm_epsilon", F32, FLOATS),
    ("llama.attention.clamp_kqv", F32, FLOATS),
    ("llama.attention.logit_softcapping", F32, FLOATS),
    ("llama.final_logit_softcapping", F32, FLOATS),
    ("llama.logit_scale", F32, FLOATS),
    ("llama.residual_scale", F32, FLOATS),
    ("llama.embedding_scale", F32, FLOATS),
    ("llama.attention.scale", F32, FLOATS),
    ("llama.vocab_size", U32, INTS),
    ("llama.context_length", U32, INTS),
    ("llama.leading_dense_block_count", U32, INTS),
    ("llama.interleave_moe_layer_step", U32, INTS),
    ("llama.pooling_type", U32, INTS),
    ("llama.attention.causal", GGUFValueType.BOOL, [False, True]),
    ("tokenizer.ggml.padding_token_id", U32, INTS),
    ("tokenizer.ggml.eot_token_id", U32, INTS),
    ("tokenizer.ggml.eom_token_id", U32, INTS),
    ("tokenizer.ggml.seperator_token_id", U32, INTS),
    ("tokenizer.ggml.cls_token_id", U32, INTS),
    ("tokenizer.ggml.mask_token_id", U32, INTS),
    ("tokenizer.ggml.fim_pre_token_id", U32, INTS),
    ("tokenizer.ggml.fim_mid_token_id", U32, INTS),
    ("tokenizer.ggml.fim_suf_token_id", U32, INTS),
    ("tokenizer.ggml.add_bos_token", GGUFValueType.BOOL, [False, True]),
    ("tokenizer.ggml.add_eos_token", GGUFValueType.BOOL, [False, True]),
    ("tokenizer.ggml.add_space_prefix", GGUFValueType.BOOL, [False, True]),
    ("tokenizer.ggml.remove_extra_whitespaces", GGUFValueType.BOOL, [False, True]),
    ("tokenizer.ggml.pre", S, PRE),
    ("tokenizer.chat_template", S, TEMPLATES),
    ("general.alignment", U32, [0, 1, 2, 3, 8, 16, 64, 2**31]),
    ("general.quantization_version", U32, INTS),
    ("split.count", GGUFValueType.UINT16, [0, 1, 2, 65535]),
    ("split.no", GGUFValueType.UINT16, [0, 1, 2]),
]
# Per-layer arrays llama.cpp accepts in place of a scalar.
PER_LAYER = ["llama.attention.head_count", "llama.attention.head_count_kv", "llama.feed_forward_length"]
_BYTE_TOKEN = re.compile("<0x[0-9A-Fa-f]{2}>")
TOKEN_TYPES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 255, -1, 2**31 - 1, -(2**31)]


class _Skip(Exception):
    """A mutation that does not apply to this file (say, no tensors are left to change)."""


class _Mutator:
    def __init__(self, parts: Parts, rng: random.Random) -> None:
        self.p = parts
        self.rng = rng

    def pick(self, items: list[Any]) -> Any:
        if not items:
            raise _Skip("nothing to change")
        return items[self.rng.randrange(len(items))]

    def scalar_fields(self, kinds: list[int]) -> list[Field]:
        return [f for f in self.p.fields if f.kind in kinds]

    def int_value(self, old: int | None = None) -> int:
        extra = [old + 1, old - 1, old * 2, old // 2, self.p.n_vocab(), self.p.n_vocab() - 1] if old else []
        return int(self.pick(INTS + extra))

    # Each mutation changes `self.p` and returns a one-line description.

    def set_int(self) -> str:
        f = self.pick(self.scalar_fields(_INT_KINDS))
        old, f.value = f.value, _wrap(f.kind, self.int_value(int(f.value)))
        return f"{f.key}: {old} -> {f.value}"

    def set_float(self) -> str:
        f = self.pick(self.scalar_fields(_FLOAT_KINDS))
        f.value = self.pick(FLOATS)
        return f"{f.key} = {f.value}"

    def set_special_id(self) -> str:
        key = self.pick(["bos", "eos", "unknown", "padding", "eot"])
        value = self.pick([self.p.n_vocab(), self.p.n_vocab() - 1, 2**31, 2**32 - 1, 3, 300])
        self._set(f"tokenizer.ggml.{key}_token_id", U32, value)
        return f"tokenizer.ggml.{key}_token_id = {value}"

    def retype(self) -> str:
        f = self.pick([f for f in self.p.fields if f.kind != A])
        old = f.kind
        f.kind = self.pick([*_FORMATS, S, A])
        number = f.value if isinstance(f.value, int | float) else len(f.value)
        if f.kind == S:
            f.value = str(f.value)
        elif f.kind == A:
            f.item_kind = self.pick([U32, I32, F32, S])
            n = self.pick([0, 1, 2, 3, 512])
            f.value = [number if f.item_kind != S else str(number)] * n
        elif f.kind in _FLOAT_KINDS:
            f.value = float(number) if not isinstance(number, str) else 0.0
        else:
            f.value = _wrap(f.kind, int(number) if not math.isnan(number) and math.isfinite(number) else 0)
        return f"{f.key}: type {old} -> {f.kind}"

    def drop_field(self) -> str:
        f = self.pick(self.p.fields)
        self.p.fields.remove(f)
        return f"drop {f.key}"

    def add_field(self) -> str:
        key, kind, values = self.pick(OPTIONAL)
        value = self.pick(values)
        self._set(key, kind, _wrap(kind, value) if kind in _FORMATS else value)
        return f"{key} = {value!r}"

    def per_layer_array(self) -> str:
        key = self.pick(PER_LAYER)
        n_layer = self._int("llama.block_count", 2)
        n = self.pick([0, 1, n_layer, n_layer + 1, 600])
        old = self._int(key, 4)
        values = [self.pick([old, old, 0, 1, 3, 2**31]) for _ in range(n)]
        self._set(key, A, values).item_kind = self.pick([U32, I32])
        return f"{key} = array of {n}: {values[:4]}"

    def set_string(self) -> str:
        choice = self.rng.randrange(4)
        if choice == 0:
            arch = self.pick(ARCHS)
            self._set("general.architecture", S, arch)
            return f"general.architecture = {arch!r}"
        if choice == 1:  # another architecture with every llama.* key renamed to it
            arch = self.pick(ARCHS[:-4])
            self._set("general.architecture", S, arch)
            for f in self.p.fields:
                if f.key.startswith("llama."):
                    f.key = arch + f.key[len("llama") :]
            return f"architecture {arch!r} with its keys renamed"
        if choice == 2:
            model = self.pick(TOKENIZERS)
            self._set("tokenizer.ggml.model", S, model)
            return f"tokenizer.ggml.model = {model!r}"
        name = self.pick(["", "x" * 100_000, b"\xff\xfe bad utf-8"])
        self._set("general.name", S, name)
        return f"general.name = {name[:12]!r}"

    def tokens(self) -> str:
        tokens = self._vocab("tokens")
        if tokens is None or tokens.item_kind != S:
            raise _Skip("no token list")
        values = tokens.value
        keep_in_step = self.rng.random() < 0.7  # also edit the scores and types alike
        byte_ids = [i for i, t in enumerate(values) if isinstance(t, str) and _BYTE_TOKEN.fullmatch(t)]
        choice = self.rng.randrange(9)
        if choice == 0 and byte_ids:
            n = self.pick([len(byte_ids), len(byte_ids), 1, 5, 128])
            gone = set(self.rng.sample(byte_ids, min(n, len(byte_ids))))
            if self.rng.random() < 0.3:
                gone = {i for i in byte_ids if values[i] == "<0x0A>"}
            self._remove(gone, keep_in_step)
            return f"remove {len(gone)} byte tokens"
        if choice == 1 and byte_ids:  # the raw byte itself, which llama.cpp also accepts
            for i in byte_ids:
                values[i] = bytes([int(values[i][3:5], 16)])
            return "byte tokens spelled as raw bytes"
        if choice == 2:
            i = self.rng.randrange(len(values)) if values else 0
            new = self.pick(["", "<0x", "<0xZZ>", "<0x0a>", b"\xff\xfe", "a" * 70_000, "<s>", "\u2581"])
            if values:
                old, values[i] = values[i], new
                return f"token {i} {old!r} -> {new!r:.20}"
            return "empty vocabulary"
        if choice == 3 and values:  # a duplicate of another token
            i, j = self.rng.randrange(len(values)), self.rng.randrange(len(values))
            values[i] = values[j]
            return f"token {i} duplicates token {j} {values[j]!r}"
        if choice == 4:
            n = self.pick([0, 1, 2, 3, 100, 258, len(values) - 1])
            self._remove(set(range(n, len(values))), keep_in_step)
            return f"vocabulary cut to {n} tokens"
        if choice == 5:
            n = self.pick([1, 10, 1000])
            values.extend(f"<extra_{i}>" for i in range(n))
            if keep_in_step:
                self._extend("scores", [0.0] * n)
                self._extend("token_type", [1] * n)
                self._fit_vocab_tensors()
            return f"{n} tokens added"
        if choice == 6:
            order = list(range(len(values)))
            self.rng.shuffle(order)
            self._reorder(order)
            return "vocabulary shuffled"
        if choice == 7:  # change the array's element type
            tokens.item_kind = self.pick([U32, I32, F32])
            tokens.value = list(range(len(values)))
            return f"tokens as element type {tokens.item_kind}"
        n = self.pick([0, 1, len(values) - 1, len(values) + 1, 2**40])
        tokens.count = n
        return f"token count written as {n}"

    def token_types(self) -> str:
        types = self._vocab("token_type")
        tokens = self._vocab("tokens")
        if types is None or tokens is None or types.item_kind not in _INT_KINDS:
            raise _Skip("no token types")
        values = types.value
        choice = self.rng.randrange(6)
        if choice == 0:
            n = self.pick([1, 3, 20])
            new = self.pick(TOKEN_TYPES)
            for _ in range(n):
                values[self.rng.randrange(len(values))] = new
            return f"{n} token types -> {new}"
        if choice == 1:
            new = self.pick([1, 3, 4, 5, 2])
            for i, t in enumerate(tokens.value[: len(values)]):
                if isinstance(t, str) and t.startswith("<0x"):
                    values[i] = new
            return f"byte token types -> {new}"
        if choice == 2:
            new = self.pick([6, 6, 3, 5, 2, 4, 0])
            for i in range(len(values)):
                values[i] = new
            return f"every token type -> {new}"
        if choice == 3:
            for i in self.rng.sample(range(len(values)), min(5, len(values))):
                values[i] = 6
            return "5 random tokens typed BYTE"
        if choice == 4:
            types.item_kind = self.pick([GGUFValueType.UINT8, U32, F32, GGUFValueType.INT64])
            types.value = [_as_kind(types.item_kind, v) for v in values]
            return f"token types as element type {types.item_kind}"
        n = self.pick([0, 1, len(values) - 1, len(values) + 5])
        types.value = (values + [1] * n)[:n]
        return f"token types array of {n}"

    def scores(self) -> str:
        scores = self._vocab("scores")
        if scores is None or scores.item_kind not in _FLOAT_KINDS:
            raise _Skip("no scores")
        values = scores.value
        choice = self.rng.randrange(3)
        if choice == 0:
            new = self.pick(FLOATS)
            for i in self.rng.sample(range(len(values)), min(self.pick([1, 10, len(values)]), len(values))):
                values[i] = new
            return f"scores -> {new}"
        if choice == 1:
            scores.item_kind = self.pick([GGUFValueType.FLOAT64, I32, S])
            scores.value = [_as_kind(scores.item_kind, v) for v in values]
            return f"scores as element type {scores.item_kind}"
        n = self.pick([0, 1, len(values) - 1, len(values) + 5])
        scores.value = (values + [0.0] * n)[:n]
        return f"scores array of {n}"

    def tensor_shape(self) -> str:
        t = self.pick(self.p.tensors)
        choice = self.rng.randrange(3)
        if choice == 0 and t.shape:
            d = self.rng.randrange(len(t.shape))
            old = t.shape[d]
            t.shape[d] = self.pick([0, 1, 3, old - 1, old + 1, old * 2, 2**32, 2**62])
            what = f"{t.name} dim {d}: {old} -> {t.shape[d]}"
        elif choice == 1:
            t.shape = [*t.shape, self.pick([1, 1, 2])]
            what = f"{t.name} gains a dimension: {t.shape}"
        else:
            t.shape = self.pick([t.shape[:-1], [], [1, 1, 1, 1, *t.shape]])
            what = f"{t.name} shape {t.shape}"
        return self._maybe_relayout(what)

    def tensor_type(self) -> str:
        t = self.pick(self.p.tensors)
        old = t.ggml_type
        t.ggml_type = self.pick([1, 30, 8, 2, 12, 14, 16, 24, 26, 28, 4, 5, 39, 40, 41, 100, 2**32 - 1])
        return self._maybe_relayout(f"{t.name} type {old} -> {t.ggml_type}")

    def tensor_offset(self) -> str:
        t = self.pick(self.p.tensors)
        other = self.pick(self.p.tensors)
        old = t.offset
        t.offset = self.pick([old + 1, old + 32, old - 32, 0, other.offset, 2**63, len(self.p.data)])
        return f"{t.name} offset {old} -> {t.offset}"

    def tensor_name(self) -> str:
        t = self.pick(self.p.tensors)
        choice = self.rng.randrange(4)
        if choice == 0:
            old, t.name = (
                t.name,
                self.pick(
                    [
                        "blk.0.attn_qq.weight",
                        "blk.7.attn_q.weight",
                        "",
                        "x" * 70_000,
                        self.pick(self.p.tensors).name,
                    ]
                ),
            )
            return f"tensor {old} renamed {t.name[:30]!r}"
        if choice == 1:
            self.p.tensors.remove(t)
            return self._maybe_relayout(f"drop tensor {t.name}")
        if choice == 2:
            self.p.tensors.append(copy.copy(t))
            return self._maybe_relayout(f"tensor {t.name} twice")
        self.p.tensors.append(Tensor("blk.2.attn_q.weight", list(t.shape), t.ggml_type, t.offset))
        return "an extra layer's tensor"

    def tensor_data(self) -> str:
        floats = [t for t in self.p.tensors if t.ggml_type == 0]
        if not floats:
            raise _Skip("no F32 tensor")
        t = self.pick(floats)
        size = tensor_bytes(t.shape, t.ggml_type) or 0
        fill = self.pick([math.nan, math.inf, -math.inf, 1e38, 0.0])
        data = bytearray(self.p.data)
        data[t.offset : t.offset + size] = struct.pack("<f", fill) * (size // 4)
        self.p.data = bytes(data)
        return f"{t.name} filled with {fill}"

    def counts(self) -> str:
        if self.rng.random() < 0.5:
            self.p.n_tensors = self.pick([0, len(self.p.tensors) - 1, len(self.p.tensors) + 1, 2**40])
            return f"tensor count written as {self.p.n_tensors}"
        self.p.n_kv = self.pick([0, len(self.p.fields) - 1, len(self.p.fields) + 1, 2**40])
        return f"key count written as {self.p.n_kv}"

    def version(self) -> str:
        self.p.version = self.pick([0, 1, 2, 4, 2**32 - 1])
        return f"version {self.p.version}"

    def alignment(self) -> str:
        align = self.pick([1, 8, 16, 64, 4096])
        self._set("general.alignment", U32, align)
        self.p.pad_to = align
        return self._maybe_relayout(f"general.alignment {align}", always=True)

    # -- helpers

    def _field(self, key: str, kind: int, value: Any) -> Field:
        f = self.p.get(key)
        if f is None:
            f = Field(key, kind, value)
            self.p.fields.insert(self.rng.randrange(len(self.p.fields) + 1), f)
        return f

    def _set(self, key: str, kind: int, value: Any) -> Field:
        f = self._field(key, kind, value)
        f.kind, f.value = kind, value
        return f

    def _int(self, key: str, default: int) -> int:
        f = self.p.get(key)
        return int(f.value) if f is not None and isinstance(f.value, int) else default

    def _vocab(self, name: str) -> Field | None:
        f = self.p.get(f"tokenizer.ggml.{name}")
        return f if f is not None and isinstance(f.value, list) else None

    def _remove(self, gone: set[int], keep_in_step: bool) -> None:
        names = ["tokens", "scores", "token_type"] if keep_in_step else ["tokens"]
        for name in names:
            f = self._vocab(name)
            if f is not None:
                f.value = [v for i, v in enumerate(f.value) if i not in gone]
        if keep_in_step:
            self._fit_vocab_tensors()

    def _fit_vocab_tensors(self) -> None:
        """Mostly, give the embedding and output matrices one row per token again, so the
        file stays consistent and the changed vocabulary reaches llama.cpp's tokenizer."""
        if self.rng.random() < 0.2:
            return
        for t in self.p.tensors:
            if t.name in ("token_embd.weight", "output.weight") and len(t.shape) == 2:
                t.shape[1] = self.p.n_vocab()
        relayout(self.p, self.rng)

    def _extend(self, name: str, values: list[Any]) -> None:
        f = self._vocab(name)
        if f is not None:
            f.value.extend(_as_kind(f.item_kind, v) for v in values)

    def _reorder(self, order: list[int]) -> None:
        for name in ("tokens", "scores", "token_type"):
            f = self._vocab(name)
            if f is not None and len(f.value) == len(order):
                f.value = [f.value[i] for i in order]

    def _maybe_relayout(self, what: str, *, always: bool = False) -> str:
        if (always or self.rng.random() < 0.6) and relayout(self.p, self.rng):
            return what + " (data laid out again)"
        return what


# How often each mutation is picked.
WEIGHTS: dict[str, int] = {
    "set_int": 14,
    "set_float": 4,
    "set_special_id": 4,
    "retype": 4,
    "drop_field": 5,
    "add_field": 10,
    "per_layer_array": 3,
    "set_string": 6,
    "tokens": 10,
    "token_types": 7,
    "scores": 3,
    "tensor_shape": 5,
    "tensor_type": 4,
    "tensor_offset": 2,
    "tensor_name": 3,
    "tensor_data": 2,
    "counts": 1,
    "version": 1,
    "alignment": 1,
}
BYTE_MUTATIONS = ("truncate", "flip")


@dataclass(frozen=True)
class Mutant:
    seed: int
    index: int
    changes: tuple[str, ...]

    def __str__(self) -> str:
        return f"seed {self.seed} mutant {self.index}: " + "; ".join(self.changes)


_BASE: dict[str, Parts] = {}


def base_parts() -> Parts:
    if "tiny" not in _BASE:
        with tempfile.TemporaryDirectory() as folder:
            _BASE["tiny"] = read_parts(write_tiny_llama(Path(folder) / "base.gguf"))
    return _BASE["tiny"]


def write_mutant(seed: int, index: int, path: Path) -> Mutant:
    """Write mutant `index` of `seed` to `path`: the same bytes on every call."""
    rng = random.Random(f"gguf-fuzz:{seed}:{index}")
    parts = copy.deepcopy(base_parts())
    mutator = _Mutator(parts, rng)
    names, weights = list(WEIGHTS), list(WEIGHTS.values())
    changes = []
    for _ in range(rng.choice([1, 1, 1, 1, 2, 2, 3])):
        try:
            changes.append(getattr(mutator, rng.choices(names, weights)[0])())
        except _Skip:
            continue
    data = bytearray(to_bytes(parts))
    header_end = len(data) - len(parts.data)
    if rng.random() < 0.08:
        cut = rng.choice([rng.randrange(len(data)), rng.randrange(header_end)])
        changes.append(f"cut at byte {cut} of {len(data)}")
        del data[cut:]
    elif rng.random() < 0.06:
        spots = [rng.randrange(8, header_end) for _ in range(rng.choice([1, 2, 8]))]
        for spot in spots:
            data[spot] = rng.randrange(256)
        changes.append(f"bytes changed at {spots}")
    path.write_bytes(bytes(data))
    return Mutant(seed, index, tuple(changes))


# -- loading in a child process ---------------------------------------------------------

# ASCII, a newline, 2- and 4-byte characters, NUL, and text that looks like special tokens
PROMPT = "Hello, world!\nÜber naïve café 😀 <s> </s>\t42\0"
N_CTX = 256
MAX_NEW_TOKENS = 4
HANG_SECONDS = 600.0  # a hang guard, not a speed limit: loaded CI machines are slow
MEMORY_LIMIT = 6 << 30  # a runaway allocation fails in the child instead of swapping the machine

REFUSED = "refused"  # Hearth's check raised a HearthError before llama.cpp saw the file
LOAD_ERROR = "load error"  # llama.cpp refused the file; Hearth raised a ModelLoadError
GENERATED = "generated"  # it loaded, generated and unloaded
GENERATION_ERROR = "generation error"  # a clean Python exception while generating
UNEXPECTED = "unexpected exception"  # the check or the load raised something not a HearthError
KILLED = "killed"  # the process died of a signal: llama.cpp aborted or crashed
HUNG = "hung"
CLEAN = frozenset({REFUSED, LOAD_ERROR, GENERATED, GENERATION_ERROR})
_CODES = {10: REFUSED, 11: LOAD_ERROR, 12: GENERATED, 13: GENERATION_ERROR, 14: UNEXPECTED}
_RAW_CHECKS = ("check_loadable",)  # engine.gguf_meta functions that --raw turns off


@dataclass(frozen=True)
class Outcome:
    kind: str
    detail: str = ""

    @property
    def clean(self) -> bool:
        return self.kind in CLEAN


def _child(path: Path, raw: bool) -> str:
    """Load `path` as the app does and generate; returns an outcome kind (never raises)."""
    import engine.gguf_meta as gguf_meta
    from engine.manager import ModelManager
    from engine.types import GenerationRequest, LoadOptions
    from presets.errors import HearthError
    from presets.samplers import SamplerParams

    # llama-cpp-python sends stderr to /dev/null while it loads; the child's stderr is a
    # log file, and what llama.cpp says before it aborts is the point of reading it.
    for name in ("llama_cpp.llama", "llama_cpp._internals"):
        if (binding := sys.modules.get(name)) is not None:
            binding.suppress_stdout_stderr = _Loud  # type: ignore[attr-defined]
    if raw:
        for name in _RAW_CHECKS:
            if hasattr(gguf_meta, name):
                setattr(gguf_meta, name, lambda *_a, **_k: None)
    try:
        gguf_meta.model_info(path, gguf_meta.read_header(path))
    except HearthError as exc:
        return _say(REFUSED, exc)
    except Exception as exc:
        return _say(UNEXPECTED, exc)
    manager = ModelManager()
    try:
        manager.load(path, LoadOptions(n_ctx=N_CTX, threads=1))
    except HearthError as exc:
        return _say(LOAD_ERROR, exc)
    except Exception as exc:
        return _say(UNEXPECTED, exc)
    try:
        manager.backend.special_tokens()
        params = SamplerParams(max_new_tokens=MAX_NEW_TOKENS, seed=7)
        run = manager.start(GenerationRequest(PROMPT, params), "fuzz")
        run.wait(HANG_SECONDS)
        manager.unload()
    except Exception as exc:
        return _say(GENERATION_ERROR, exc)
    return _say(GENERATED, "")


class _Loud:
    def __init__(self, disable: bool = False) -> None:
        pass

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        return None


def _say(kind: str, detail: object) -> str:
    text = f"{type(detail).__name__}: {detail}" if isinstance(detail, BaseException) else str(detail)
    print(f"@@outcome {json.dumps([kind, text[:600]])}", file=sys.stderr, flush=True)
    return kind


def serve(stdin: IO[str], stdout: IO[str]) -> None:
    """The fork server: one JSON request a line in, one JSON outcome a line out."""
    import engine.llama  # noqa: F401 - imports llama_cpp once, for every child to inherit
    import engine.manager  # noqa: F401

    codes = {kind: code for code, kind in _CODES.items()}
    for line in stdin:
        request = json.loads(line)
        path, raw = Path(request["path"]), bool(request.get("raw"))
        log = path.with_suffix(".stderr")
        pid = os.fork()
        if pid == 0:  # the child
            try:
                resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
                with log.open("wb") as err, open(os.devnull, "wb") as null:
                    os.dup2(null.fileno(), 1)
                    os.dup2(err.fileno(), 2)
                kind = _child(path, raw)
                os._exit(codes[kind])
            except BaseException:
                os._exit(99)
        outcome = _wait(pid, log)
        stdout.write(json.dumps([outcome.kind, outcome.detail]) + "\n")
        stdout.flush()


def _wait(pid: int, log: Path) -> Outcome:
    deadline = time.monotonic() + HANG_SECONDS
    status = 0
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.002)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return Outcome(HUNG, _tail(log))
    if os.WIFSIGNALED(status):
        return Outcome(KILLED, f"{signal.Signals(os.WTERMSIG(status)).name}: {_tail(log)}")
    code = os.WEXITSTATUS(status)
    if code in _CODES:
        return Outcome(_CODES[code], _reported(log))
    return Outcome(UNEXPECTED, f"exit code {code}: {_tail(log)}")


def _reported(log: Path) -> str:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("@@outcome "):
            return str(json.loads(line.removeprefix("@@outcome "))[1])
    return ""


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    lines = [re.sub(r"\S*/vendor/llama\.cpp/", "", line.strip()) for line in lines[-4:]]
    return " | ".join(line for line in lines if line and not line.startswith("@@"))[:600]


class ForkRunner:
    """Loads model files in forked children of one server process that imported llama_cpp."""

    def __init__(self) -> None:
        env = dict(os.environ, GGML_NO_BACKTRACE="1", PYTHONPATH=f"{ROOT}:{HERE}")
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )

    def run(self, path: Path, *, raw: bool = False) -> Outcome:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"path": str(path), "raw": raw}) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the fuzz server process ended")
        kind, detail = json.loads(line)
        return Outcome(kind, detail)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(30)

    def __enter__(self) -> ForkRunner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def fuzz(
    seed: int, indices: range | list[int], folder: Path, *, raw: bool = False, keep: bool = False
) -> Iterator[tuple[Mutant, Outcome]]:
    """Write each mutant to `folder`, load it in a child, and yield what happened."""
    with ForkRunner() as runner:
        for index in indices:
            path = folder / f"mutant-{seed}-{index}.gguf"
            mutant = write_mutant(seed, index, path)
            outcome = runner.run(path, raw=raw)
            if not keep:
                path.unlink(missing_ok=True)
                path.with_suffix(".stderr").unlink(missing_ok=True)
            yield mutant, outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--only", type=int, nargs="*", help="run just these mutant indices")
    parser.add_argument("--raw", action="store_true", help="turn engine/gguf_checks.py off in the child")
    parser.add_argument("--keep", action="store_true", help="keep the files in test-artifacts/fuzz-mutants")
    parser.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    args = parser.parse_args(argv)
    if args.serve:
        serve(sys.stdin, sys.stdout)
        return 0
    indices = args.only if args.only else range(args.start, args.start + args.count)
    tally: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        folder = ROOT / "test-artifacts" / "fuzz-mutants" if args.keep else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for mutant, outcome in fuzz(args.seed, indices, folder, raw=args.raw, keep=args.keep):
            tally[outcome.kind] += 1
            if not outcome.clean:
                failures[outcome.detail.split("|")[-1].strip()[:120]] += 1
            if not (args.quiet and outcome.clean):
                print(f"{outcome.kind:>20}  {mutant}\n{'':>22}{outcome.detail[:300]}", flush=True)
    print(f"\n{sum(tally.values())} mutants in {time.monotonic() - started:.0f} s (seed {args.seed}, "
          f"{'raw: checks off' if args.raw else 'with Hearth checks'})")  # fmt: skip
    for kind, n in tally.most_common():
        print(f"  {kind}: {n}")
    for what, n in failures.most_common():
        print(f"  {n} x {what}")
    return 1 if any(kind not in CLEAN for kind in tally) else 0


if __name__ == "__main__":
    sys.exit(main())
