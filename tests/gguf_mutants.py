"""Mutated tiny GGUF files: the tiny llama GGUF of `tiny_model.py` with one to three
changes to its header values, vocabulary, tensor table, tensor data or raw bytes.
`Mutator` makes one change at a time, chosen by `WEIGHTS`; `gguf_fuzz.write_mutant`
draws them from a seeded generator, so a mutant reproduces alone (`gguf_fuzz.py --only`)."""

from __future__ import annotations

import copy
import math
import random
import re
import struct
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from gguf import GGUFValueType  # noqa: E402
from gguf_parts import (  # noqa: E402
    F32,
    FLOAT_KINDS,
    FORMATS,
    I32,
    INT_KINDS,
    U32,
    A,
    Field,
    Parts,
    S,
    Tensor,
    as_kind,
    relayout,
    tensor_bytes,
    wrap,
)

# -- mutations --------------------------------------------------------------------------
from gguf_values import ARCHS, FLOATS, INTS, OPTIONAL, PER_LAYER, TOKEN_TYPES, TOKENIZERS  # noqa: E402

_BYTE_TOKEN = re.compile("<0x[0-9A-Fa-f]{2}>")


class Skip(Exception):
    """A mutation that does not apply to this file (say, no tensors are left to change)."""


class Mutator:
    def __init__(self, parts: Parts, rng: random.Random) -> None:
        self.p = parts
        self.rng = rng

    def pick(self, items: list[Any]) -> Any:
        if not items:
            raise Skip("nothing to change")
        return items[self.rng.randrange(len(items))]

    def scalar_fields(self, kinds: list[int]) -> list[Field]:
        return [f for f in self.p.fields if f.kind in kinds]

    def int_value(self, old: int | None = None) -> int:
        extra = [old + 1, old - 1, old * 2, old // 2, self.p.n_vocab(), self.p.n_vocab() - 1] if old else []
        return int(self.pick(INTS + extra))

    # Each mutation changes `self.p` and returns a one-line description.

    def set_int(self) -> str:
        f = self.pick(self.scalar_fields(INT_KINDS))
        old, f.value = f.value, wrap(f.kind, self.int_value(int(f.value)))
        return f"{f.key}: {old} -> {f.value}"

    def set_float(self) -> str:
        f = self.pick(self.scalar_fields(FLOAT_KINDS))
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
        f.kind = self.pick([*FORMATS, S, A])
        number = f.value if isinstance(f.value, int | float) else len(f.value)
        if f.kind == S:
            f.value = str(f.value)
        elif f.kind == A:
            f.item_kind = self.pick([U32, I32, F32, S])
            n = self.pick([0, 1, 2, 3, 512])
            f.value = [number if f.item_kind != S else str(number)] * n
        elif f.kind in FLOAT_KINDS:
            f.value = float(number) if not isinstance(number, str) else 0.0
        else:
            f.value = wrap(f.kind, int(number) if not math.isnan(number) and math.isfinite(number) else 0)
        return f"{f.key}: type {old} -> {f.kind}"

    def drop_field(self) -> str:
        f = self.pick(self.p.fields)
        self.p.fields.remove(f)
        return f"drop {f.key}"

    def add_field(self) -> str:
        key, kind, values = self.pick(OPTIONAL)
        value = self.pick(values)
        self._set(key, kind, wrap(kind, value) if kind in FORMATS else value)
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
            raise Skip("no token list")
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
        if types is None or tokens is None or types.item_kind not in INT_KINDS:
            raise Skip("no token types")
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
            types.value = [as_kind(types.item_kind, v) for v in values]
            return f"token types as element type {types.item_kind}"
        n = self.pick([0, 1, len(values) - 1, len(values) + 5])
        types.value = (values + [1] * n)[:n]
        return f"token types array of {n}"

    def scores(self) -> str:
        scores = self._vocab("scores")
        if scores is None or scores.item_kind not in FLOAT_KINDS:
            raise Skip("no scores")
        values = scores.value
        choice = self.rng.randrange(3)
        if choice == 0:
            new = self.pick(FLOATS)
            for i in self.rng.sample(range(len(values)), min(self.pick([1, 10, len(values)]), len(values))):
                values[i] = new
            return f"scores -> {new}"
        if choice == 1:
            scores.item_kind = self.pick([GGUFValueType.FLOAT64, I32, S])
            scores.value = [as_kind(scores.item_kind, v) for v in values]
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
            raise Skip("no F32 tensor")
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
            f.value.extend(as_kind(f.item_kind, v) for v in values)

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
