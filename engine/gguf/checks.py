"""Refusing model files that would make llama.cpp abort the whole process.

llama.cpp checks much of a model file with assertions. A bad value there does not raise
an error Hearth could show: it ends the process (SIGABRT, now and then SIGSEGV), at load
or at the first message, and every chat and the API go down with it. `read_header` runs
`check_loadable` on every header it parses, so the Models tab lists such a file with the
reason, and loading it raises `CorruptModelError` before llama.cpp sees it.

Each check stands in for one abort that the model-file fuzz (`tests/test_model_fuzz.py`)
found in the llama.cpp vendored by llama-cpp-python 0.3.36:

vocabulary
  - the same token string twice: GGML_ASSERT(id_to_token.size() == token_to_id.size()),
    at load. Some published conversions have this.
  - a SentencePiece ("llama") vocabulary without the byte tokens <0x00>…<0xF4>:
    std::out_of_range in byte_to_token at the first character it has no token for.
  - a WordPiece ("bert") vocabulary with tokens typed BYTE: GGML_ABORT in token_to_byte.
hyperparameters
  - block_count outside 1…512, or nextn_predict_layers above it: GGML_ASSERT, at load.
  - expert counts that do not fit together: GGML_ASSERT, at load.
  - a rope.scaling.type other than none, linear, yarn or longrope: GGML_ASSERT, at load.
  - a negative or NaN norm epsilon: GGML_ASSERT(eps >= 0.0f), at the first message.
  - a layer with key weights but no key/value heads: GGML_ASSERT in ggml, first message.
tensors
  - tensor data off a 32-byte boundary: "buffer pointer must be aligned", at load.
  - a one-dimensional tensor (a norm or bias) not stored as F32: "binary_op: unsupported
    types", at the first message.
  - an integer or F64 tensor: SIGSEGV or GGML_ABORT at the first message.

A value of the wrong type, a missing key or a wrong tensor shape needs no check here:
llama.cpp refuses those with an error, which `engine.llama` reports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from gguf import GGMLQuantizationType

from engine.errors import CorruptModelError, ProjectorError

MAX_LAYERS = 512  # LLAMA_MAX_LAYERS
MAX_EXPERTS = 1024  # LLAMA_MAX_EXPERTS
TENSOR_ALIGNMENT = 32  # where ggml's CPU backend needs a weight buffer to start
ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")
# Every byte UTF-8 text can hold; a SentencePiece vocabulary needs a token for each.
UTF8_BYTES = (*range(0x00, 0xC0), *range(0xC2, 0xF5))
BYTE_TOKEN = 6  # gguf TokenType.BYTE
NOT_COMPUTABLE = {
    GGMLQuantizationType.I8,
    GGMLQuantizationType.I16,
    GGMLQuantizationType.I32,
    GGMLQuantizationType.I64,
    GGMLQuantizationType.F64,
}
# These read an expert count of 1 as a dense model, before llama.cpp checks the counts.
_ONE_EXPERT_IS_DENSE = {"hunyuan-dense", "hunyuan_vl", "hunyuan-vl"}
_KV_WEIGHT = re.compile(r"blk\.(\d+)\.attn_(k|v|qkv)\.weight")


class _Tensor(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def ggml_type(self) -> int: ...
    @property
    def offset(self) -> int: ...


class GGUFHeader(Protocol):
    """What the checks read of a header: `engine.gguf_meta.GGUFHeader`, which imports this
    module, so it is described here rather than imported."""

    @property
    def metadata(self) -> Mapping[str, Any]: ...
    @property
    def tensors(self) -> Sequence[_Tensor]: ...
    @property
    def tokens(self) -> Sequence[bytes] | None: ...
    @property
    def token_types(self) -> Sequence[int] | None: ...
    @property
    def data_offset(self) -> int: ...
    def arch_value(self, key: str, default: Any = None) -> Any: ...


def check_loadable(path: Path, header: GGUFHeader) -> None:
    """Refuse a file that llama.cpp would abort on instead of refusing it.

    Raises:
        CorruptModelError: the first problem found, in plain words.
    """
    for check in _CHECKS:
        problem = check(header)
        if problem:
            raise CorruptModelError(
                f"{path.name} cannot be loaded: {problem}. llama.cpp would crash on this file "
                "and take Hearth down with it. Download the model again, or use another "
                "conversion of it."
            )


# What every vision projector holds, and what each kind llama.cpp reads without checking
# (a LLaVA projector without its second layer crashes it).
_PROJECTOR_KEYS = ("clip.vision.image_size", "clip.vision.patch_size", "clip.vision.embedding_length")
_PROJECTOR_TENSORS = {"mlp": ("mm.0.weight", "mm.2.weight")}


def check_projector(path: Path, header: GGUFHeader) -> None:
    """Refuse a file that is not a vision projector llama.cpp can load.

    Raises:
        ProjectorError: naming the problem.
    """
    meta = header.metadata
    problem = None
    if meta.get("general.architecture") != "clip" or meta.get("clip.has_vision_encoder") is not True:
        problem = "it is not a vision projector (an mmproj GGUF with a vision encoder)"
    elif missing := [key for key in _PROJECTOR_KEYS if not isinstance(meta.get(key), int)]:
        problem = f"it lacks {', '.join(missing)}"
    else:
        names = {tensor.name for tensor in header.tensors}
        needed = _PROJECTOR_TENSORS.get(str(meta.get("clip.projector_type", "")), ())
        if absent := [name for name in needed if name not in names]:
            problem = f"its projector lacks {', '.join(absent)}"
    if problem:
        raise ProjectorError(f"{path.name} cannot be loaded as a vision projector: {problem}.")


def _vocabulary(header: GGUFHeader) -> str | None:
    if header.tokens is None:  # missing, or not strings: llama.cpp refuses the file itself
        return None
    tokens = header.tokens
    ids = dict(zip(tokens, range(len(tokens)), strict=True))
    if len(ids) < len(tokens) or b"" in ids or b"\0" in b"".join(tokens):
        # The slow way, as llama.cpp reads them: C strings, an empty one renamed.
        ids = {}
        for i, raw in enumerate(tokens):
            text = raw.split(b"\0", 1)[0] or f"[EMPTY_{i}]".encode()
            if text in ids:
                return f"its vocabulary has the token {_show(text)} twice (ids {ids[text]} and {i})"
            ids[text] = i
    model = header.metadata.get("tokenizer.ggml.model")
    if model == "llama":
        missing = [
            byte
            for byte in UTF8_BYTES
            if f"<0x{byte:02X}>".encode() not in ids and (byte == 0 or bytes([byte]) not in ids)
        ]
        if missing:
            shown = ", ".join(f"<0x{byte:02X}>" for byte in missing[:3])
            return (
                f"its SentencePiece vocabulary lacks {len(missing)} of the byte tokens "
                f"(<0x00> to <0xFF>) used for characters without a token of their own ({shown}…)"
            )
    if model == "bert" and header.token_types and BYTE_TOKEN in header.token_types:
        return "its WordPiece (bert) vocabulary has tokens typed as bytes, which WordPiece has no use for"
    return None


def _layers(header: GGUFHeader) -> str | None:
    n_layer = _int(header.arch_value("block_count"))
    if n_layer is not None and not 1 <= n_layer <= MAX_LAYERS:
        return f"it declares {n_layer} layers (block_count), and llama.cpp handles 1 to {MAX_LAYERS}"
    nextn = _int(header.arch_value("nextn_predict_layers"))
    if n_layer is not None and nextn is not None and nextn > n_layer:
        return f"it declares {nextn} prediction layers (nextn_predict_layers) but only {n_layer} layers"
    return None


def _experts(header: GGUFHeader) -> str | None:
    n_expert = _int(header.arch_value("expert_count", 0))
    used = header.arch_value("expert_used_count", 0)
    used_max = _int(max(used, default=0) if isinstance(used, list) else used)
    groups = _int(header.arch_value("expert_group_count", 0))
    group_used = _int(header.arch_value("expert_group_used_count", 0))
    if n_expert is None or used_max is None or groups is None or group_used is None:
        return None  # a value of the wrong type: llama.cpp refuses it itself
    if _architecture(header) in _ONE_EXPERT_IS_DENSE and n_expert <= 1:
        n_expert = used_max = 0
    if n_expert > MAX_EXPERTS:
        return f"it declares {n_expert} experts (expert_count), and llama.cpp handles up to {MAX_EXPERTS}"
    if used_max > n_expert:
        return f"it sends each token to {used_max} experts (expert_used_count) but has {n_expert}"
    if n_expert and not used_max:
        return f"it has {n_expert} experts but sends tokens to none of them (expert_used_count)"
    if not n_expert and groups:
        return f"it declares {groups} expert groups (expert_group_count) but no experts"
    if n_expert and groups >= n_expert:
        return f"it declares {groups} expert groups for {n_expert} experts"
    if groups > 1 and (n_expert % groups or not 0 < group_used < groups):
        return (
            f"its {n_expert} experts in {groups} groups, {group_used} of them used "
            "(expert_group_used_count), do not fit together"
        )
    return None


def _rope(header: GGUFHeader) -> str | None:
    scaling = header.arch_value("rope.scaling.type")
    if isinstance(scaling, str) and scaling not in ROPE_SCALING_TYPES:
        return (
            f"its rope scaling type {scaling!r} is not one llama.cpp knows ({', '.join(ROPE_SCALING_TYPES)})"
        )
    return None


def _epsilons(header: GGUFHeader) -> str | None:
    prefix = f"{_architecture(header)}."
    for key, value in header.metadata.items():
        is_epsilon = key.startswith(prefix) and key.endswith("epsilon") and isinstance(value, float)
        if is_epsilon and not value >= 0:  # NaN too
            return f"its normalisation epsilon {key} is {value}, where it must be zero or more"
    return None


def _attention_heads(header: GGUFHeader) -> str | None:
    kv_heads = header.arch_value("attention.head_count_kv", header.arch_value("attention.head_count"))
    # llama.cpp checks weight shapes against one head count; per-layer counts that differ
    # reach its KV cache unchecked.
    per_layer = isinstance(kv_heads, list) and len(set(kv_heads)) > 1
    for tensor in header.tensors:
        match = _KV_WEIGHT.fullmatch(tensor.name)
        if match is None:
            continue
        layer, part = int(match[1]), match[2]
        heads = _int(_of_layer(kv_heads, layer))
        if heads == 0:
            return f"its layer {layer} has attention weights but no key/value heads (attention.head_count_kv)"
        width = _head_width(header, layer, "key_length" if part == "k" else "value_length")
        if per_layer and part != "qkv" and heads and width and tensor.shape[1:2] != (heads * width,):
            return (
                f"its key/value head count for layer {layer} ({heads}, attention.head_count_kv) "
                f"does not match the size of {tensor.name}"
            )
    return None


def _head_width(header: GGUFHeader, layer: int, key: str) -> int | None:
    width = _int(header.arch_value(f"attention.{key}"))
    if width is not None:
        return width
    n_embd = _int(header.arch_value("embedding_length"))
    n_head = _int(_of_layer(header.arch_value("attention.head_count"), layer))
    return n_embd // n_head if n_embd and n_head else None


def _of_layer(value: Any, layer: int) -> Any:
    """One layer's value of a key that may be one value for all layers or one per layer."""
    if isinstance(value, list):
        return value[layer] if layer < len(value) else None
    return value


def _tensors(header: GGUFHeader) -> str | None:
    for tensor in header.tensors:
        if (header.data_offset + tensor.offset) % TENSOR_ALIGNMENT:
            alignment = header.metadata.get("general.alignment", 32)
            return (
                f"the data of its tensor {tensor.name} does not start on a {TENSOR_ALIGNMENT}-byte "
                f"boundary (general.alignment is {alignment})"
            )
        kind = _type_name(tensor.ggml_type)
        if tensor.ggml_type in NOT_COMPUTABLE:
            return f"its tensor {tensor.name} is stored as {kind}, a type llama.cpp does not compute with"
        if len(tensor.shape) == 1 and tensor.ggml_type != GGMLQuantizationType.F32:
            return (
                f"its one-dimensional tensor {tensor.name} is stored as {kind}; llama.cpp computes "
                "with norms and biases only in F32"
            )
    return None


_CHECKS: tuple[Callable[[GGUFHeader], str | None], ...] = (
    _vocabulary,
    _layers,
    _experts,
    _rope,
    _epsilons,
    _attention_heads,
    _tensors,
)


def _int(value: Any) -> int | None:
    """An integer header value; None for anything else (bool included)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _architecture(header: GGUFHeader) -> str:
    arch = header.metadata.get("general.architecture")
    return arch if isinstance(arch, str) else ""


def _type_name(ggml_type: int) -> str:
    try:
        return GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type {ggml_type}"


def _show(token: bytes) -> str:
    return repr(token.decode("utf-8", errors="replace"))
