"""Converting a legacy GGML/GGMF/GGJT file (Llama, or ggml's GPT-2) to GGUF, streaming and safely.

The tensor data is copied byte for byte: quantized blocks are never decoded, so the
converted model computes exactly what the legacy one did. Only the container, the
tensor names and the metadata change. The source is memory-mapped read-only and
copied in chunks, so a 13 GB file never sits in memory. The output is written to a
hidden temporary file beside the destination and renamed only when complete, so a
failed or cancelled conversion leaves nothing behind.

gguf-py's writer does the header, metadata and tensor table. Given a uint8 array and
a quantized type it treats the shape as a *byte* shape, so quantized tensors are
declared with `quant_shape_to_byte_shape`; F32/F16 tensors with their element shape.
The GPT-2 metadata and tokenizer come from `gpt2.py`; the copying is the same.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_VERSION, GGMLQuantizationType, GGUFWriter, RopeScalingType, TokenType
from gguf.quants import quant_shape_to_byte_shape

from catalog.errors import ConversionError
from catalog.ggml import gpt2
from catalog.ggml.detect import LegacyModel, inspect_legacy
from catalog.ggml.errors import ConversionCancelledError
from catalog.ggml.llama_layout import LlamaFacts, gguf_tensor_name
from catalog.ggml.options import ConvertOptions
from catalog.ggml.reader import LegacyTensor, open_map, read_vocab
from store.atomic import fsync_dir

Progress = Callable[[float, str], None]
Vocab = list[tuple[bytes, float]]  # the legacy token list: (bytes, score)
AddKeys = Callable[[GGUFWriter, Vocab], None]  # writes an architecture's metadata and tokenizer
CHUNK_BYTES = 16 << 20
SPACE_MARGIN = 64 << 20
_HEADER_SHARE = 0.02  # of the progress bar, for the header and vocabulary
_MERGES_SHARE = 0.08  # of the progress bar, for rebuilding a GPT-2 file's merges
_ADDED_TOKEN = re.compile(r"<[^<>\s]+>")
_SPM_VOCAB = 32000  # LLaMA's SentencePiece vocabulary; ids past it were added by fine-tuners
_UNQUANTIZED_DTYPES: dict[int, np.dtype[Any]] = {0: np.dtype(np.float32), 1: np.dtype(np.float16)}


_TEMP_SUFFIX = ".converting"  # a conversion in progress writes `.<name>.<id>.converting`


def convert_to_gguf(
    src: Path,
    dst: Path,
    options: ConvertOptions,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Convert a legacy Llama or GPT-2 model file to a GGUF file.

    Args:
        src: the GGML, GGMF or GGJT file; it is only read.
        dst: the GGUF file to create; its folder must exist and the file must not.
        options: the metadata GGML never stored (see `suggest_options`). A GPT-2 file
            uses only the name and description: its context length is fixed by its
            position embedding, and it has no RMS norm, rope or grouped-query attention.
        progress: called with (fraction 0..1, words) as the work advances; ends at 1.0.
        cancel: set it to stop; the conversion then raises and leaves no output.

    Returns:
        `dst`, complete.

    Raises:
        LegacyRefusalError, NotALegacyModelError: a kind of file that cannot convert.
        LegacyFileTruncatedError, LegacyFileDamagedError: the source is incomplete or damaged.
        ConversionCancelledError: `cancel` was set.
        ConversionError: bad options, the destination exists, no space, or writing failed.
    """
    report = progress or _ignore
    stop = cancel or threading.Event()
    _check_cancel(stop)
    report(0.0, f"Reading {src.name}")
    model = inspect_legacy(src, progress=_scaled(report, stop, 0.0, _MERGES_SHARE))
    model.require_convertible()
    assert model.layout is not None  # a convertible file has one
    if model.gpt2 is not None:
        arch, start = "gpt2", _MERGES_SHARE + _HEADER_SHARE
        plan = gpt2.tensor_plan(model.tensors)
        add_keys = _gpt2_keys(model, model.gpt2, options)
    else:
        assert model.llama is not None  # a convertible file that is not GPT-2 is a Llama
        arch, start = "llama", _HEADER_SHARE
        plan = _tensor_plan(model.tensors)
        add_keys = _llama_keys(model, model.llama, _head_count_kv(model.llama, options), options)
    _check_destination(src, dst, model)
    temp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}{_TEMP_SUFFIX}")
    try:
        with open_map(src) as buf:
            _write_header(temp, arch, add_keys, read_vocab(buf, model.layout), plan)
            _check_cancel(stop)
            report(start, "Wrote the GGUF header and vocabulary")
            _copy_tensor_data(buf, temp, plan, _scaled(report, stop, start, 1 - _HEADER_SHARE), stop)
        os.replace(temp, dst)
        fsync_dir(dst.parent)
    except OSError as exc:
        raise ConversionError(f"Could not write {dst.name}: {exc.strerror or exc}.") from exc
    finally:
        temp.unlink(missing_ok=True)
    report(1.0, f"Converted to {dst.name}")
    return dst


def remove_interrupted(folder: Path) -> list[Path]:
    """Delete what conversions cut short by a crash left in `folder`: their temp files
    can be gigabytes, and no conversion is running when the app starts. Returns them."""
    removed = []
    for temp in folder.glob(f".*{_TEMP_SUFFIX}") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            temp.unlink()
            removed.append(temp)
    return removed


def _ignore(_fraction: float, _words: str) -> None:
    return None


def _scaled(report: Progress, stop: threading.Event, low: float, high: float) -> Progress:
    """A progress callback for one stage: its 0..1 becomes `low`..`high` of the whole, and
    each report is a point where the stage can be cancelled."""

    def scaled(fraction: float, words: str) -> None:
        _check_cancel(stop)
        report(low + (high - low) * fraction, words)

    return scaled


def _check_cancel(stop: threading.Event) -> None:
    if stop.is_set():
        raise ConversionCancelledError("The conversion was cancelled; no file was written.")


def _head_count_kv(facts: LlamaFacts, options: ConvertOptions) -> int:
    if options.gqa is not None and options.gqa != facts.gqa:
        raise ConversionError(
            f"The GQA factor {options.gqa} does not match this file: its key/value tensors hold "
            f"{facts.n_head_kv} heads for {facts.n_head} query heads, a factor of {facts.gqa}."
        )
    return facts.n_head_kv


def _check_destination(src: Path, dst: Path, model: LegacyModel) -> None:
    if dst.resolve() == src.resolve():
        raise ConversionError("The converted file needs its own name; the original is never overwritten.")
    if dst.exists():
        raise ConversionError(f"{dst.name} already exists. Choose another name or delete it first.")
    if not dst.parent.is_dir():
        raise ConversionError(f"The folder {dst.parent} does not exist.")
    free = shutil.disk_usage(dst.parent).free
    if free < model.file_size + SPACE_MARGIN:
        need = (model.file_size + SPACE_MARGIN) / 2**30
        raise ConversionError(
            f"Not enough free space in {dst.parent}: converting needs about {need:.1f} GB, "
            f"and {free / 2**30:.1f} GB is free."
        )


def _tensor_plan(tensors: tuple[LegacyTensor, ...]) -> list[tuple[str, LegacyTensor]]:
    plan = []
    for tensor in tensors:
        name = gguf_tensor_name(tensor.name)
        if name is not None:
            plan.append((name, tensor))
    return plan


# -- header, metadata and tensor table -----------------------------------------------


def _write_header(
    temp: Path, arch: str, add_keys: AddKeys, vocab: Vocab, plan: list[tuple[str, LegacyTensor]]
) -> None:
    writer = GGUFWriter(str(temp), arch)
    try:
        add_keys(writer, vocab)
        for name, tensor in plan:
            _add_tensor_info(writer, name, tensor)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
    finally:
        writer.close()


def _llama_keys(model: LegacyModel, facts: LlamaFacts, n_head_kv: int, options: ConvertOptions) -> AddKeys:
    def add(writer: GGUFWriter, vocab: Vocab) -> None:
        _add_general_keys(writer, model, options)
        _add_model_keys(writer, facts, n_head_kv, options)
        assert model.layout is not None
        tokens, scores, types = spm_vocab(vocab, has_scores=model.layout.vocab_scores)
        _add_tokenizer_keys(writer, tokens, scores, types)

    return add


def _gpt2_keys(model: LegacyModel, facts: gpt2.Gpt2Facts, options: ConvertOptions) -> AddKeys:
    def add(writer: GGUFWriter, vocab: Vocab) -> None:
        _add_general_keys(writer, model, options)
        gpt2.add_gpt2_keys(writer, facts, [raw for raw, _ in vocab])

    return add


def _add_general_keys(writer: GGUFWriter, model: LegacyModel, options: ConvertOptions) -> None:
    writer.add_name(options.name)
    writer.add_description(
        options.description
        or f"Converted by Hearth from a legacy {model.label} {model.file_type_name} file ({model.path.name})."
    )
    if model.file_type is not None:
        writer.add_file_type(model.file_type)  # llama.cpp's file type numbering did not change
    if any(t.ggml_type not in _UNQUANTIZED_DTYPES for t in model.tensors):
        writer.add_quantization_version(GGML_QUANT_VERSION)


def _add_model_keys(writer: GGUFWriter, facts: LlamaFacts, n_head_kv: int, options: ConvertOptions) -> None:
    writer.add_context_length(options.context_length)
    writer.add_embedding_length(facts.n_embd)
    writer.add_block_count(facts.n_layer)
    writer.add_feed_forward_length(facts.n_ff)
    writer.add_head_count(facts.n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(facts.head_dim)
    writer.add_layer_norm_rms_eps(options.rms_epsilon)
    if options.rope_freq_base is not None:
        writer.add_rope_freq_base(options.rope_freq_base)
    if options.rope_linear_scale is not None:
        writer.add_rope_scaling_type(RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(options.rope_linear_scale)


def _add_tokenizer_keys(writer: GGUFWriter, tokens: list[str], scores: list[float], types: list[int]) -> None:
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)


def spm_vocab(
    entries: list[tuple[bytes, float]], *, has_scores: bool
) -> tuple[list[str], list[float], list[int]]:
    """Turn a legacy vocabulary back into SentencePiece pieces, scores and token types.

    Legacy files stored pieces with U+2581 already turned into spaces and byte-fallback
    pieces as the raw byte. Ids 0-2 are LLaMA's <unk>, <s> and </s>; ids 3-258 of one
    byte are the byte tokens <0x00>..<0xFF>. Unversioned GGML stored no scores;
    SentencePiece lists pieces best first, so minus the id keeps their order.
    """
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    for index, (raw, score) in enumerate(entries):
        text, kind = _piece(index, raw)
        tokens.append(text)
        types.append(int(kind))
        scores.append(score if has_scores else (0.0 if kind is TokenType.CONTROL else -float(index)))
    return tokens, scores, types


def _piece(index: int, raw: bytes) -> tuple[str, TokenType]:
    if index == 0:
        return "<unk>", TokenType.UNKNOWN
    if index in (1, 2):
        return ("<s>", "</s>")[index - 1], TokenType.CONTROL
    if not raw:
        return "", TokenType.CONTROL
    if 3 <= index <= 258 and len(raw) == 1:
        return f"<0x{raw[0]:02X}>", TokenType.BYTE
    text = raw.decode("utf-8", errors="replace")
    if index >= _SPM_VOCAB and _ADDED_TOKEN.fullmatch(text):
        # Tokens fine-tuners appended (<pad>, <|im_start|>) are matched whole, never split.
        return text, TokenType.USER_DEFINED
    return text.replace(" ", "\u2581"), TokenType.NORMAL


def _add_tensor_info(writer: GGUFWriter, name: str, tensor: LegacyTensor) -> None:
    if tensor.ggml_type in _UNQUANTIZED_DTYPES:
        writer.add_tensor_info(name, tensor.shape, _UNQUANTIZED_DTYPES[tensor.ggml_type], tensor.n_bytes)
        return
    quant = GGMLQuantizationType(tensor.ggml_type)
    byte_shape = quant_shape_to_byte_shape(tensor.shape, quant)
    writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), tensor.n_bytes, raw_dtype=quant)


# -- tensor data -------------------------------------------------------------------


def _copy_tensor_data(
    buf: mmap.mmap, temp: Path, plan: list[tuple[str, LegacyTensor]], report: Progress, stop: threading.Event
) -> None:
    """Append every tensor's bytes, each starting at a 32-byte boundary, as GGUF requires.
    `report` gets the fraction of the bytes copied."""
    total = sum(t.n_bytes for _, t in plan) or 1
    done = 0
    alignment = 32  # GGUFWriter's default; `general.alignment` is not written
    with temp.open("r+b") as out, memoryview(buf) as view:
        out.seek(0, os.SEEK_END)
        out.write(b"\0" * (-out.tell() % alignment))
        for index, (name, tensor) in enumerate(plan, start=1):
            words = f"Copying tensor {index} of {len(plan)} ({name})"
            for start in range(tensor.data_offset, tensor.data_offset + tensor.n_bytes, CHUNK_BYTES):
                _check_cancel(stop)
                end = min(start + CHUNK_BYTES, tensor.data_offset + tensor.n_bytes)
                with view[start:end] as chunk:
                    out.write(chunk)
                done += end - start
                report(done / total, words)
            out.write(b"\0" * (-tensor.n_bytes % alignment))
        out.flush()
        os.fsync(out.fileno())
    _check_cancel(stop)
