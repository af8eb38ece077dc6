"""Reading the containers that came before GGUF: GGML, GGMF and GGJT, and their cousins.

Every integer is little-endian. A llama.cpp file is: the magic, a version (not in
unversioned GGML), seven u32 hyperparameters, the vocabulary (length-prefixed token
bytes, each followed by an f32 score except in unversioned GGML), then tensor records
until the end of the file. A record is `n_dims, name_len, type`, `n_dims` sizes with
the fastest-varying one first, the name, and the raw data; GGJT pads the data to an
absolute file offset that is a multiple of 32.

Other programs of the time wrote the same magics with their own headers (ggml's
gpt-2, gpt-j and gpt-neox examples; rwkv.cpp), so the layout of an unversioned file is
found by trying each known header and keeping the one whose vocabulary and first
tensor record read back sensibly.

Nothing here loads tensor data: the file is memory-mapped and only headers are read.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

GGJT_ALIGNMENT = 32
MAX_DIMS = 4
MAX_NAME_BYTES = 256
MAX_TOKEN_BYTES = 1024
MAX_VOCAB = 2_000_000
MAX_DIM = 1 << 31

# Tensor types a legacy file may hold, as (values per block, bytes per block). The ids
# are ggml's and did not change in GGUF. Q4_2 (4) and Q4_3 (5) were removed in May 2023.
_LEGACY_TYPE_IDS = (0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
TYPE_SIZES: dict[int, tuple[int, int]] = {
    i: GGML_QUANT_SIZES[GGMLQuantizationType(i)] for i in _LEGACY_TYPE_IDS
}
K_QUANT_TYPES = frozenset({10, 11, 12, 13, 14})
# Block bytes of the K-quants when ggml was built with QK_K=64 (LLAMA_QKK_64): the
# same types, 64 values per block, laid out differently. Today's llama.cpp cannot read them.
QK_K64_BLOCK_BYTES = {10: 24, 11: 28, 12: 38, 13: 46, 14: 54, 15: 76}

_NAME = re.compile(r"[A-Za-z0-9_./\-]+")


class _ReadFailure(Exception):
    """Internal: reading stopped at `offset`; detect turns this into a user-facing error."""

    def __init__(self, what: str, offset: int = 0) -> None:
        super().__init__(what)
        self.offset = offset


class ShortRead(_ReadFailure):
    """The file ends in the middle of something."""


class BadValue(_ReadFailure):
    """A header value that cannot be right."""


class RowsNotWholeBlocks(BadValue):
    """A quantized tensor whose rows do not divide into blocks of its type."""


@dataclass(frozen=True)
class LegacyTensor:
    """One tensor record: its name, sizes (ggml order, fastest first), type and bytes."""

    name: str
    ne: tuple[int, ...]
    ggml_type: int
    data_offset: int
    n_bytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """The sizes in numpy order (slowest first)."""
        return tuple(reversed(self.ne))

    @property
    def type_name(self) -> str:
        return type_name(self.ggml_type)


@dataclass(frozen=True)
class RecordHead:
    """A tensor record's header, read before its type is trusted."""

    name: str
    ne: tuple[int, ...]
    type_id: int
    end: int  # the offset just after the name


@dataclass(frozen=True)
class Layout:
    """Where the parts of a legacy file are, as found by `read_layout`."""

    container: str  # GGML, GGMF or GGJT
    version: int | None
    header_kind: str  # llama, gpt-2, gpt-j, gpt-neox or rwkv.cpp
    hparams: dict[str, int] = field(default_factory=dict)
    vocab_offset: int = 0
    n_vocab_records: int = 0
    vocab_scores: bool = False
    tensors_offset: int = 0
    aligned: bool = False


@contextmanager
def open_map(path: Path) -> Iterator[mmap.mmap]:
    """Map a file read-only. The original is never written to."""
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            raise ShortRead("its first bytes")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            yield buf


def type_name(type_id: int) -> str:
    try:
        return GGMLQuantizationType(type_id).name
    except ValueError:
        return {4: "Q4_2", 5: "Q4_3"}.get(type_id, f"type {type_id}")


def _ints(buf: mmap.mmap, pos: int, count: int, fmt: str = "I", what: str = "the header") -> list[int]:
    end = pos + 4 * count
    if end > len(buf):
        raise ShortRead(what, pos)
    return list(struct.unpack_from(f"<{count}{fmt}", buf, pos))


# -- headers ---------------------------------------------------------------------

_LLAMA_NAMES = ("n_vocab", "n_embd", "n_mult", "n_head", "n_layer", "n_rot", "ftype")
_RWKV_NAMES = ("n_vocab", "n_embd", "n_layer", "data_type")
# Unversioned headers, tried in this order: (kind, hparam names, n_vocab repeated before the vocab).
_UNVERSIONED = (
    ("gpt-2", ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer", "ftype"), True),
    ("gpt-j", ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer", "n_rot", "ftype"), True),
    ("llama", _LLAMA_NAMES, False),
    ("gpt-neox", ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer", "n_rot", "par_res", "ftype"), False),
)


def read_layout(buf: mmap.mmap) -> Layout:
    """Find the header, vocabulary and first tensor record of a legacy file.

    Raises:
        ShortRead: the file ends inside the header or vocabulary.
        BadValue: the magic, version or header values cannot be right.
    """
    magic = bytes(buf[:4])
    if magic == b"fmgg":
        (version,) = _ints(buf, 4, 1)
        if version in (100, 101):  # rwkv.cpp reused the GGMF magic with its own versions
            values = _ints(buf, 8, len(_RWKV_NAMES))
            hparams = dict(zip(_RWKV_NAMES, values, strict=True))
            layout = Layout("GGMF", version, "rwkv.cpp", hparams, tensors_offset=8 + 4 * len(_RWKV_NAMES))
            peek_record(buf, layout.tensors_offset)
            return layout
        if version != 1:
            raise BadValue(f"it says GGMF version {version}, which never existed")
        return _llama_layout(buf, "GGMF", version, 8, scores=True, aligned=False)
    if magic == b"tjgg":
        (version,) = _ints(buf, 4, 1)
        if version not in (1, 2, 3):
            raise BadValue(f"it says GGJT version {version}, which never existed")
        return _llama_layout(buf, "GGJT", version, 8, scores=True, aligned=True)
    if magic == b"lmgg":
        return _unversioned_layout(buf)
    raise BadValue("its signature is not a GGML one")


def _llama_layout(buf: mmap.mmap, container: str, version: int | None, pos: int, **kw: bool) -> Layout:
    hparams = dict(zip(_LLAMA_NAMES, _ints(buf, pos, len(_LLAMA_NAMES)), strict=True))
    _check_counts(hparams)
    return _with_vocab(buf, container, version, "llama", hparams, pos + 4 * len(_LLAMA_NAMES), **kw)


def _unversioned_layout(buf: mmap.mmap) -> Layout:
    # Keep the failure of the attempt that read furthest into the file: that header fitted.
    furthest: _ReadFailure = BadValue("no known GGML header fits its first bytes", -1)
    for kind, names, repeated in _UNVERSIONED:
        try:
            hparams = dict(zip(names, _ints(buf, 4, len(names), "i"), strict=True))
            _check_counts(hparams)
            pos = 4 + 4 * len(names)
            if repeated:
                if _ints(buf, pos, 1, "i")[0] != hparams["n_vocab"]:
                    raise BadValue("the vocabulary size is not repeated where expected", pos)
                pos += 4
            return _with_vocab(buf, "GGML", None, kind, hparams, pos, scores=False, aligned=False)
        except _ReadFailure as exc:
            if exc.offset > furthest.offset:
                furthest = exc
    raise furthest


def _with_vocab(
    buf: mmap.mmap,
    container: str,
    version: int | None,
    kind: str,
    hparams: dict[str, int],
    vocab_offset: int,
    *,
    scores: bool,
    aligned: bool,
) -> Layout:
    n_vocab = hparams["n_vocab"]
    end = skip_vocab(buf, vocab_offset, n_vocab, scores=scores)
    peek_record(buf, end)
    return Layout(container, version, kind, hparams, vocab_offset, n_vocab, scores, end, aligned)


def _check_counts(hparams: dict[str, int]) -> None:
    n_vocab = hparams["n_vocab"]
    if not 0 < n_vocab <= MAX_VOCAB:
        raise BadValue(f"its header gives a vocabulary of {n_vocab} tokens")
    for key in ("n_embd", "n_head", "n_layer"):
        if key in hparams and not 0 < hparams[key] < 1 << 20:
            raise BadValue(f"its header gives {key} = {hparams[key]}")


# -- vocabulary ------------------------------------------------------------------


def skip_vocab(buf: mmap.mmap, pos: int, count: int, *, scores: bool) -> int:
    """The offset just after `count` vocabulary records starting at `pos`."""
    size = len(buf)
    step = 4 if scores else 0
    for _ in range(count):
        if pos + 4 > size:
            raise ShortRead("the vocabulary", pos)
        (length,) = struct.unpack_from("<I", buf, pos)
        if length > MAX_TOKEN_BYTES:
            raise BadValue(f"its vocabulary holds a {length}-byte token", pos)
        pos += 4 + length + step
    if pos > size:
        raise ShortRead("the vocabulary", pos)
    return pos


def read_vocab(buf: mmap.mmap, layout: Layout) -> list[tuple[bytes, float]]:
    """Every vocabulary record as (token bytes, score); the score is 0.0 where none is stored."""
    pos = layout.vocab_offset
    tokens: list[tuple[bytes, float]] = []
    for _ in range(layout.n_vocab_records):
        (length,) = struct.unpack_from("<I", buf, pos)
        text = bytes(buf[pos + 4 : pos + 4 + length])
        pos += 4 + length
        score = 0.0
        if layout.vocab_scores:
            (score,) = struct.unpack_from("<f", buf, pos)
            pos += 4
        tokens.append((text, float(score)))
    return tokens


# -- tensor records --------------------------------------------------------------


def peek_record(buf: mmap.mmap, pos: int) -> RecordHead:
    """Read one tensor record's header without trusting its type.

    Raises:
        ShortRead: the file ends inside the header.
        BadValue: the dimensions or the name are not those of a tensor.
    """
    n_dims, name_len, type_id = _ints(buf, pos, 3, what="a tensor record")
    if not 1 <= n_dims <= MAX_DIMS:
        raise BadValue(f"a tensor record claims {n_dims} dimensions", pos)
    if not 1 <= name_len <= MAX_NAME_BYTES:
        raise BadValue(f"a tensor record claims a {name_len}-byte name", pos)
    ne = tuple(_ints(buf, pos + 12, n_dims, what="a tensor record"))
    if any(not 0 < size < MAX_DIM for size in ne):
        raise BadValue(f"a tensor record claims the size {ne}", pos)
    start = pos + 12 + 4 * n_dims
    if start + name_len > len(buf):
        raise ShortRead("a tensor name", pos)
    raw = bytes(buf[start : start + name_len])
    name = raw.decode("ascii", errors="replace")
    if not _NAME.fullmatch(name):
        raise BadValue(f"a tensor is named {raw[:40]!r}", pos)
    return RecordHead(name, ne, type_id, start + name_len)


def tensor_bytes(head: RecordHead, qk_k: int = 256) -> int:
    """The data size of a record, by its type's block size."""
    if head.type_id not in TYPE_SIZES:
        raise BadValue(f"tensor {head.name} has the unknown type {head.type_id}")
    block_elems, block_bytes = TYPE_SIZES[head.type_id]
    if qk_k == 64 and head.type_id in QK_K64_BLOCK_BYTES:
        block_elems, block_bytes = 64, QK_K64_BLOCK_BYTES[head.type_id]
    if head.ne[0] % block_elems:
        raise RowsNotWholeBlocks(
            f"tensor {head.name} has rows of {head.ne[0]} values, not whole {type_name(head.type_id)} blocks"
        )
    count = 1
    for size in head.ne:
        count *= size
    return count // block_elems * block_bytes


def walk_tensors(
    buf: mmap.mmap, pos: int, *, aligned: bool, qk_k: int = 256, seen: list[str] | None = None
) -> list[LegacyTensor]:
    """Every tensor record from `pos` to the end of the file.

    Names are appended to `seen` as they are read, so a caller still knows the first
    names when a later record fails.

    Raises:
        ShortRead: a record or its data runs past the end of the file.
        BadValue: a record cannot be right.
    """
    tensors: list[LegacyTensor] = []
    size = len(buf)
    while pos < size:
        head = peek_record(buf, pos)
        if seen is not None:
            seen.append(head.name)
        n_bytes = tensor_bytes(head, qk_k)
        start = -(-head.end // GGJT_ALIGNMENT) * GGJT_ALIGNMENT if aligned else head.end
        if start + n_bytes > size:
            raise ShortRead(f"the data of tensor {head.name}")
        tensors.append(LegacyTensor(head.name, head.ne, head.type_id, start, n_bytes))
        pos = start + n_bytes
    if not tensors:
        raise ShortRead("the tensors (there are none)", pos)
    return tensors
