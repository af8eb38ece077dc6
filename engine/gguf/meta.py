"""Reading a model file's facts without loading its weights.

`gguf.GGUFReader` decodes every vocabulary string into numpy objects, which takes
seconds on a 262k-token vocabulary. This reader walks the header once with
`struct`, skips arrays it does not need, and checks that every tensor's bytes are
really in the file, so a truncated download is caught before llama.cpp sees it. It
keeps the vocabulary's token strings (as bytes) and types for `engine.gguf_checks`,
which refuses what llama.cpp would abort on.
"""

from __future__ import annotations

import math
import mmap
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from engine.errors import CorruptModelError, LegacyGGMLError, ModelNotFoundError, NotGGUFError
from engine.gguf.checks import check_loadable
from engine.types import ModelInfo

GGUF_MAGIC = b"GGUF"
# Legacy magics as they appear on disk (a little-endian uint32 reads back reversed).
LEGACY_MAGICS = {b"lmgg": "GGML", b"fmgg": "GGMF", b"tjgg": "GGJT"}
_MAX_STRING = 64 << 20  # no metadata string in a sane file is bigger than this
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
# Arrays kept in memory: these, numbers few enough to be per-layer values (llama.cpp
# allows 512 layers), and the vocabulary's tokens and types. The rest (merges, scores)
# are skipped.
_KEEP_ARRAYS = {"general.tags", "general.languages"}
_MAX_KEPT_NUMBERS = 1024
TOKENS, TOKEN_TYPES = "tokenizer.ggml.tokens", "tokenizer.ggml.token_type"


@dataclass(frozen=True)
class TensorEntry:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    n_bytes: int


@dataclass
class GGUFHeader:
    """The metadata and tensor table of a GGUF file."""

    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: list[TensorEntry] = field(default_factory=list)
    array_lengths: dict[str, int] = field(default_factory=dict)
    array_types: dict[str, int] = field(default_factory=dict)  # each array's element type
    tokens: list[bytes] | None = None  # the vocabulary, as stored (when it is strings)
    token_types: list[int] | None = None  # when stored as integers
    data_offset: int = 0
    file_size: int = 0

    def arch_value(self, key: str, default: Any = None) -> Any:
        arch = self.metadata.get("general.architecture", "")
        if not isinstance(arch, str):
            return default
        return self.metadata.get(f"{arch}.{key}", default)


def sniff_container(path: Path) -> tuple[str, int | None]:
    """Name the container of a model file by its magic: GGUF, GGML, GGMF or GGJT.

    Returns:
        (container, version); version is None for unversioned GGML.

    Raises:
        ModelNotFoundError: no such file.
        NotGGUFError: the magic is not one of a GGML-family model.
    """
    if not path.is_file():
        raise ModelNotFoundError(f"There is no model file at {path}.")
    with path.open("rb") as handle:
        head = handle.read(8)
    magic = head[:4]
    version = struct.unpack("<I", head[4:8])[0] if len(head) >= 8 else None
    if magic == GGUF_MAGIC:
        return "GGUF", version
    if magic in LEGACY_MAGICS:
        name = LEGACY_MAGICS[magic]
        return name, None if name == "GGML" else version
    raise NotGGUFError(
        f"{path.name} is not a GGUF model file. Hearth loads .gguf files, such as the "
        "ones in the Models tab's catalog."
    )


def read_header(path: Path) -> GGUFHeader:
    """Parse a GGUF file's header and tensor table, and check the file is complete.

    Raises:
        ModelNotFoundError, NotGGUFError: see `sniff_container`.
        LegacyGGMLError: a GGML, GGMF or GGJT file.
        CorruptModelError: the header is damaged or the file is truncated.
    """
    container, version = sniff_container(path)
    if container != "GGUF":
        label = container if version is None else f"{container} v{version}"
        raise LegacyGGMLError(
            f"{path.name} is a legacy GGML model ({label}), the format used before GGUF "
            "(August 2023). It has to be converted to GGUF before it can be loaded.",
            container=label,
        )
    if version not in (2, 3):
        raise CorruptModelError(f"{path.name} is GGUF version {version}, which Hearth cannot read.")
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            header = _Parser(buf, version).parse()
    except (struct.error, IndexError, ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise CorruptModelError(
            f"{path.name} looks like GGUF but its header is damaged or cut short ({exc}). Download it again."
        ) from exc
    _check_complete(path, header)
    check_loadable(path, header)
    return header


def model_info(path: Path, header: GGUFHeader | None = None) -> ModelInfo:
    """The facts the UI shows about a model, from its header."""
    header = header or read_header(path)
    meta = header.metadata
    return ModelInfo(
        path=str(path),
        name=str(meta.get("general.name") or path.stem),
        architecture=str(meta.get("general.architecture", "unknown")),
        file_size=header.file_size,
        quant=quant_name(header),
        context_length=_first_int(header.arch_value("context_length", 0)),
        chat_template=str(meta.get("tokenizer.chat_template", "") or ""),
        n_layers=_first_int(header.arch_value("block_count", 0)),
        n_embd=_first_int(header.arch_value("embedding_length", 0)),
        n_head=_first_int(header.arch_value("attention.head_count", 0)),
        n_head_kv=_first_int(
            header.arch_value("attention.head_count_kv", header.arch_value("attention.head_count", 0))
        ),
    )


def quant_name(header: GGUFHeader) -> str:
    """The quantization, from `general.file_type`, else the most common weight type."""
    file_type = header.metadata.get("general.file_type")
    if isinstance(file_type, int):
        try:
            return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            pass
    weights = Counter(t.ggml_type for t in header.tensors if len(t.shape) >= 2)
    if not weights:
        return "unknown"
    try:
        return GGMLQuantizationType(weights.most_common(1)[0][0]).name
    except ValueError:
        return "unknown"


class _Parser:
    def __init__(self, buf: mmap.mmap, version: int) -> None:
        self.buf = buf
        self.pos = 8
        self.version = version

    def parse(self) -> GGUFHeader:
        header = GGUFHeader(version=self.version, file_size=len(self.buf))
        n_tensors, n_kv = self._u64(), self._u64()
        if n_tensors > len(self.buf) or n_kv > len(self.buf):
            raise ValueError("impossible tensor or key count")
        for _ in range(n_kv):
            key = self._string()
            kind = self._u32()
            if kind == _ARRAY:
                value, item_kind, length = self._array(key)
                header.array_lengths[key] = length
                header.array_types[key] = item_kind
                if key == TOKENS and item_kind == _STRING:
                    header.tokens = value
                elif key == TOKEN_TYPES and value is not None:
                    header.token_types = value
                elif value is not None:
                    header.metadata[key] = value
            else:
                header.metadata[key] = self._value(kind)
        header.tensors = [self._tensor() for _ in range(n_tensors)]
        alignment = header.metadata.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise ValueError(f"general.alignment {alignment!r} is not a power of two")
        header.data_offset = -(-self.pos // alignment) * alignment
        return header

    def _read(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def _u32(self) -> int:
        return int(self._read("<I"))

    def _u64(self) -> int:
        return int(self._read("<Q"))

    def _string(self) -> str:
        length = self._u64()
        if length > _MAX_STRING or self.pos + length > len(self.buf):
            raise ValueError("string runs past the end of the file")
        raw = self.buf[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8")

    def _value(self, kind: int) -> Any:
        if kind == _STRING:
            return self._string()
        if kind not in _SCALARS:
            raise ValueError(f"unknown metadata type {kind}")
        return self._read(_SCALARS[kind])

    def _array(self, key: str) -> tuple[list[Any] | None, int, int]:
        """An array's values (None when skipped), element type and length."""
        kind, count = self._u32(), self._u64()
        if count > len(self.buf):
            raise ValueError("impossible array length")
        if key == TOKENS and kind == _STRING:
            return self._raw_strings(count), kind, count
        if key in _KEEP_ARRAYS:
            return [self._value(kind) for _ in range(count)], kind, count
        short = count <= _MAX_KEPT_NUMBERS and not key.startswith("tokenizer.")
        if kind in _SCALARS and (short or key == TOKEN_TYPES):
            return self._numbers(kind, count), kind, count
        if kind == _STRING:
            for _ in range(count):
                length = self._u64()
                self.pos += length
                if self.pos > len(self.buf):
                    raise ValueError("array runs past the end of the file")
        elif kind in _SCALARS:
            self.pos += struct.calcsize(_SCALARS[kind]) * count
        else:
            raise ValueError(f"unsupported array element type {kind}")
        return None, kind, count

    def _numbers(self, kind: int, count: int) -> list[Any]:
        fmt = f"<{count}{_SCALARS[kind][1]}"
        values = list(struct.unpack_from(fmt, self.buf, self.pos))
        self.pos += struct.calcsize(fmt)
        return values

    def _raw_strings(self, count: int) -> list[bytes]:
        # Token strings stay bytes: decoding 262k of them would cost more than the rest.
        buf, pos, end = self.buf, self.pos, len(self.buf)
        read_length = struct.Struct("<Q").unpack_from
        strings = []
        for _ in range(count):
            (length,) = read_length(buf, pos)
            pos += 8
            if pos + length > end:
                raise ValueError("array runs past the end of the file")
            strings.append(buf[pos : pos + length])
            pos += length
        self.pos = pos
        return strings

    def _tensor(self) -> TensorEntry:
        name = self._string()
        n_dims = self._u32()
        if not 1 <= n_dims <= 4:
            raise ValueError(f"tensor {name} has {n_dims} dimensions")
        shape = tuple(self._u64() for _ in range(n_dims))
        ggml_type, offset = self._u32(), self._u64()
        return TensorEntry(name, shape, ggml_type, offset, _tensor_bytes(shape, ggml_type))


def _tensor_bytes(shape: tuple[int, ...], ggml_type: int) -> int:
    try:
        block_elems, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError) as exc:
        raise ValueError(f"unknown tensor type {ggml_type}") from exc
    elements = 1
    for dim in shape:
        elements *= dim
    return elements // block_elems * block_bytes


def _check_complete(path: Path, header: GGUFHeader) -> None:
    end = max((header.data_offset + t.offset + t.n_bytes for t in header.tensors), default=0)
    if end > header.file_size:
        missing = end - header.file_size
        raise CorruptModelError(
            f"{path.name} is truncated: {missing:,} bytes of tensor data are missing. "
            "The download was probably interrupted; download it again."
        )
    if not header.tensors:
        raise CorruptModelError(f"{path.name} has no tensors, so it is not a usable model.")


def _first_int(value: Any) -> int:
    """A count from the header: the first of a per-layer array, 0 for what is not a number."""
    if isinstance(value, list):  # some architectures store per-layer head counts as an array
        value = value[0] if value else 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return int(value) if isinstance(value, int | float) else 0
