"""A GGUF file as editable parts: read one, change its header values, vocabulary and
tensor table, write it back (for the mutants of `gguf_mutants.py`)."""

from __future__ import annotations

import math
import random
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType  # noqa: E402

# -- a GGUF file as editable parts ------------------------------------------------------

FORMATS = {
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
INT_KINDS = [k for k, f in FORMATS.items() if f[-1] in "BbHhIiQq"]
FLOAT_KINDS = [GGUFValueType.FLOAT32, GGUFValueType.FLOAT64]
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


def wrap(kind: int, value: Any) -> Any:
    fmt = FORMATS[GGUFValueType(kind)]
    if fmt[-1] in "fd":
        return float(value)
    if fmt == "<?":
        return bool(value)
    bits = struct.calcsize(fmt) * 8
    value = int(value) % (1 << bits) if math.isfinite(value) else 0
    if fmt[-1].islower() and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def as_kind(kind: int, value: Any) -> Any:
    """`value` as an element of an array of `kind`."""
    return str(value) if kind == S else wrap(kind, value)


def _string(value: str | bytes) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack("<Q", len(raw)) + raw


def _value(kind: int, value: Any, item_kind: int = 0, count: int | None = None) -> bytes:
    if kind == S:
        return _string(value)
    if kind == A:
        items = b"".join(_value(item_kind, v) for v in value)
        return struct.pack("<IQ", item_kind, (len(value) if count is None else count) % 2**64) + items
    return struct.pack(FORMATS[GGUFValueType(kind)], wrap(kind, value))


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
