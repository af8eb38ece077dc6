"""What a legacy model file is, and whether Hearth can turn it into a GGUF.

The magic only says which container a file uses; several programs of 2023 wrote the
same magics with different contents. So `inspect_legacy` also checks that the
hyperparameters are plausible and reads the tensor names before it names an
architecture, and it walks every tensor record so a truncated download is caught
before any conversion starts.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from catalog.errors import ConversionError
from catalog.ggml.errors import (
    LegacyFileDamagedError,
    LegacyFileTruncatedError,
    LegacyRefusalError,
    NotALegacyModelError,
)
from catalog.ggml.gpt2 import Gpt2Facts, Progress, convertible_text, gpt2_facts, refusal_text
from catalog.ggml.llama_layout import LlamaFacts, llama_facts
from catalog.ggml.reader import (
    K_QUANT_TYPES,
    BadValue,
    Layout,
    LegacyTensor,
    ShortRead,
    open_map,
    peek_record,
    read_layout,
    read_vocab,
    walk_tensors,
)

# llama.cpp's "mostly X" file types (not tensor type ids: Q8_0 is file type 7, tensor type 8).
FILE_TYPE_NAMES = {
    0: "ALL_F32",
    1: "MOSTLY_F16",
    2: "MOSTLY_Q4_0",
    3: "MOSTLY_Q4_1",
    4: "MOSTLY_Q4_1_SOME_F16",
    5: "MOSTLY_Q4_2",
    6: "MOSTLY_Q4_3",
    7: "MOSTLY_Q8_0",
    8: "MOSTLY_Q5_0",
    9: "MOSTLY_Q5_1",
    10: "MOSTLY_Q2_K",
    11: "MOSTLY_Q3_K_S",
    12: "MOSTLY_Q3_K_M",
    13: "MOSTLY_Q3_K_L",
    14: "MOSTLY_Q4_K_S",
    15: "MOSTLY_Q4_K_M",
    16: "MOSTLY_Q5_K_S",
    17: "MOSTLY_Q5_K_M",
    18: "MOSTLY_Q6_K",
}
# rwkv.cpp numbers its data types its own way.
_RWKV_TYPE_NAMES = ("FP32", "FP16", "Q4_0", "Q4_1", "Q4_1_O", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0")
_UNQUANTIZED = frozenset({0, 1})  # F32 and F16, as file types and as tensor types
# GGJT v2 files of these file types / tensor types use the block layout from before llama.cpp PR #1508.
_V2_CHANGED_FILE_TYPES = frozenset({2, 3, 4, 7})
_V2_CHANGED_TENSOR_TYPES = frozenset({2, 3, 8})
SPRING_DRAGON = "Spring Dragon 13B (TheBloke/Spring-Dragon-GGUF)"
SPRING_DRAGON_ID = "spring-dragon-13b"  # its id in catalog/models.json


class Architecture(StrEnum):
    """The model family a legacy file holds, from its tensor names."""

    LLAMA = "llama"
    GPT2 = "gpt2"
    RWKV = "rwkv"
    GPTJ = "gpt-j"
    NEOX = "neox"
    UNKNOWN = "unknown"


class RefusalKind(StrEnum):
    """Why a recognised file cannot be converted."""

    OLD_QUANT = "old-quant"  # quantized before the block layouts settled (before GGJT v3)
    QK_K_64 = "qk-k-64"  # K-quants from a QK_K=64 build
    RWKV = "rwkv"
    GPT2 = "gpt2"  # a GPT-2 file whose token list or tensors do not make a working GGUF
    OTHER_ARCH = "other-arch"  # GPT-J, GPT-NeoX or something unknown
    ALREADY_GGUF = "already-gguf"


@dataclass(frozen=True)
class LegacyModel:
    """A legacy model file as Hearth understands it, with the verdict on converting it.

    `hparams` holds the header values under the names the writing program used
    (`n_vocab`, `n_embd`, `n_head`, `n_layer`, `ftype`, ...). `llama` holds what was
    inferred from the tensors of a convertible Llama file, `gpt2` the same for a GPT-2
    file (with the merges rebuilt from its token list). `explanation` is one or two
    plain sentences for the UI: what will happen, or why it cannot; `alternative_id`
    names a catalog entry to offer instead where one fits.
    """

    path: Path
    container: str  # GGML, GGMF, GGJT or GGUF
    version: int | None
    architecture: Architecture
    file_type_name: str
    file_size: int
    convertible: bool
    explanation: str
    refusal: RefusalKind | None = None
    hparams: dict[str, int] = field(default_factory=dict)
    file_type: int | None = None
    tensors: tuple[LegacyTensor, ...] = ()
    llama: LlamaFacts | None = None
    gpt2: Gpt2Facts | None = None
    alternative_id: str | None = None  # a catalog entry to offer instead, when one fits
    layout: Layout | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        """The container and version, as people wrote it then: "GGJT v3", "GGML"."""
        return self.container if self.version is None else f"{self.container} v{self.version}"

    def require_convertible(self) -> None:
        """Raise `LegacyRefusalError` with the explanation unless the file can convert."""
        if not self.convertible:
            raise LegacyRefusalError(self.explanation, kind=str(self.refusal or RefusalKind.OTHER_ARCH))


def inspect_legacy(path: Path, progress: Progress | None = None) -> LegacyModel:
    """Identify a model file and decide whether it can be converted to GGUF.

    Args:
        path: a GGML, GGMF, GGJT (or GGUF) file; it is only read.
        progress: called with (fraction 0..1, words) while a GPT-2 file's merges are rebuilt.

    Returns:
        The description; `convertible` False with an `explanation` for kinds that
        cannot convert (old quantizations, QK_K=64 K-quants, RWKV, GPT-2 files whose
        token list is not GPT-2's, other architectures, files that are GGUF already).

    Raises:
        ConversionError: there is no file at `path`.
        NotALegacyModelError: the file is not a GGML-family model at all.
        LegacyFileTruncatedError: the file ends before its data does.
        LegacyFileDamagedError: the header or tensor table cannot be right.
        ConversionCancelledError: raised by `progress` to stop.
    """
    if not path.is_file():
        raise ConversionError(f"There is no file at {path}.")
    size = path.stat().st_size
    if size == 0:
        raise NotALegacyModelError(f"{path.name} is empty, so it is not a model file.")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[:4] == b"GGUF":
        version = int.from_bytes(head[4:8], "little") if len(head) == 8 else None
        return _already_gguf(path, size, version)
    if head[:4] not in (b"lmgg", b"fmgg", b"tjgg"):
        raise NotALegacyModelError(
            f"{path.name} is not a GGML model file: it does not start with a GGML, GGMF, GGJT or "
            "GGUF signature. Hearth converts legacy llama.cpp .bin files (2023) to GGUF."
        )
    label = {b"lmgg": "GGML", b"fmgg": "GGMF", b"tjgg": "GGJT"}[head[:4]]
    try:
        with open_map(path) as buf:
            return _inspect_mapped(path, size, buf, progress)
    except ShortRead as exc:
        raise LegacyFileTruncatedError(
            f"{path.name} is cut short: it ends inside {exc}. The download was probably "
            "interrupted; download it again."
        ) from exc
    except BadValue as exc:
        raise LegacyFileDamagedError(
            f"{path.name} starts like a {label} model file, but it is damaged: {exc}. Download it again."
        ) from exc


def _inspect_mapped(path: Path, size: int, buf: mmap.mmap, progress: Progress | None) -> LegacyModel:
    layout = read_layout(buf)
    names: list[str] = []
    tensors: list[LegacyTensor] = []
    walk_failure: ShortRead | BadValue | None = None
    try:
        tensors = walk_tensors(buf, layout.tensors_offset, aligned=layout.aligned, seen=names)
    except (ShortRead, BadValue) as exc:
        walk_failure = exc
    if not names:
        names.append(peek_record(buf, layout.tensors_offset).name)
    base = _describe(path, size, layout, _architecture(layout, names), tensors)
    refused = _refusal(base, tensors)
    if refused is not None:
        return refused
    if walk_failure is not None:
        if _is_qk_k_64(buf, layout):
            return _refuse(base, RefusalKind.QK_K_64, _qk_k_64_text(path))
        raise walk_failure
    if base.architecture is Architecture.GPT2:
        return _gpt2_verdict(base, buf, layout, progress)
    problem = _old_quant_tensors(layout, tensors)
    if problem is not None:
        return _refuse(base, RefusalKind.OLD_QUANT, _old_quant_text(base, problem))
    try:
        facts = llama_facts(path.name, layout.hparams, tensors)
    except LegacyRefusalError as exc:
        return _refuse(base, RefusalKind(exc.kind), str(exc))
    return replace(
        base,
        convertible=True,
        llama=facts,
        explanation=(
            f"A Llama-family model in {base.label} ({base.file_type_name}); Hearth can convert it "
            "to GGUF. The tensor data is copied as is, so the converted model gives the same answers."
        ),
    )


def _describe(
    path: Path, size: int, layout: Layout, arch: Architecture, tensors: list[LegacyTensor]
) -> LegacyModel:
    file_type, type_name = _file_type(layout)
    return LegacyModel(
        path=path,
        container=layout.container,
        version=layout.version,
        architecture=arch,
        file_type_name=type_name,
        file_size=size,
        convertible=False,
        explanation="",
        hparams=dict(layout.hparams),
        file_type=file_type,
        tensors=tuple(tensors),
        layout=layout,
    )


def _file_type(layout: Layout) -> tuple[int | None, str]:
    if layout.header_kind == "rwkv.cpp":
        code = layout.hparams["data_type"]
        name = _RWKV_TYPE_NAMES[code] if 0 <= code < len(_RWKV_TYPE_NAMES) else f"data type {code}"
        return code, name
    raw = layout.hparams.get("ftype")
    if raw is None:
        return None, "unknown"
    if layout.header_kind == "llama":
        if raw not in FILE_TYPE_NAMES:
            raise BadValue(f"its header gives the unknown file type {raw}")
        return raw, FILE_TYPE_NAMES[raw]
    # ggml's examples store quantization_version * 1000 + file type.
    version, code = divmod(raw, 1000)
    name = FILE_TYPE_NAMES.get(code, f"file type {code}")
    return code, name if version == 0 else f"{name} (quantization v{version})"


def _architecture(layout: Layout, names: list[str]) -> Architecture:
    def has(prefix: str) -> bool:
        return any(n.startswith(prefix) for n in names)

    if has("tok_embeddings.") or has("layers."):
        return Architecture.LLAMA
    if has("model/wte") or has("model/h0/") or has("model/ln_f/"):
        return Architecture.GPT2
    if has("gpt_neox."):
        return Architecture.NEOX
    if has("transformer.wte.") and (layout.header_kind == "gpt-j" or any(".q_proj." in n for n in names)):
        return Architecture.GPTJ
    if layout.header_kind == "rwkv.cpp" or has("emb.weight") or has("blocks.0."):
        return Architecture.RWKV
    return Architecture.UNKNOWN


def _refusal(base: LegacyModel, tensors: list[LegacyTensor]) -> LegacyModel | None:
    """The verdict for every kind that is refused before looking at the tensors in detail."""
    name = base.path.name
    arch = base.architecture
    if arch is Architecture.RWKV:
        return _refuse(
            base,
            RefusalKind.RWKV,
            f"{name} is an RWKV model in rwkv.cpp's format (such as RWKV-4 Raven). llama.cpp runs only "
            "RWKV-6 and RWKV-7, so no conversion can make this one load. Choose an RWKV-6 or RWKV-7 "
            "GGUF, or another model from the catalog.",
        )
    if arch not in (Architecture.LLAMA, Architecture.GPT2):  # GPT-2: see `_gpt2_verdict`
        return _refuse(base, RefusalKind.OTHER_ARCH, _other_arch_text(base, tensors))
    if arch is Architecture.LLAMA and (base.file_type in (5, 6) or _old_file_type(base)):  # 5, 6: Q4_2, Q4_3
        return _refuse(base, RefusalKind.OLD_QUANT, _old_quant_text(base, base.file_type_name))
    return None


def _gpt2_verdict(base: LegacyModel, buf: mmap.mmap, layout: Layout, report: Progress | None) -> LegacyModel:
    tokens = [raw for raw, _ in read_vocab(buf, layout)]
    try:
        facts = gpt2_facts(base.path.name, layout.hparams, base.tensors, tokens, report)
    except LegacyRefusalError as exc:
        text = refusal_text(base.path.name, str(exc), SPRING_DRAGON)
        return _refuse(replace(base, alternative_id=SPRING_DRAGON_ID), RefusalKind(exc.kind), text)
    return replace(base, convertible=True, gpt2=facts, explanation=convertible_text(base.file_type_name))


def _old_file_type(base: LegacyModel) -> bool:
    if base.container == "GGJT" and base.version == 3:
        return False
    if base.container == "GGJT" and base.version == 2:
        return base.file_type in _V2_CHANGED_FILE_TYPES
    return base.file_type not in _UNQUANTIZED


def _old_quant_tensors(layout: Layout, tensors: list[LegacyTensor]) -> str | None:
    """A tensor whose type a file of this age stored in a block layout that later changed."""
    if layout.container == "GGJT" and layout.version == 3:
        return None
    ggjt_v2 = layout.container == "GGJT" and layout.version == 2
    for tensor in tensors:
        if tensor.ggml_type in K_QUANT_TYPES:
            changed = True  # K-quants only ever existed in GGJT v3
        elif ggjt_v2:
            changed = tensor.ggml_type in _V2_CHANGED_TENSOR_TYPES
        else:
            changed = tensor.ggml_type not in _UNQUANTIZED
        if changed:
            return f"{tensor.type_name} (tensor {tensor.name})"
    return None


def _is_qk_k_64(buf: mmap.mmap, layout: Layout) -> bool:
    """True when the tensor table only adds up with 64-value K-quant blocks."""
    try:
        tensors = walk_tensors(buf, layout.tensors_offset, aligned=layout.aligned, qk_k=64)
    except (ShortRead, BadValue):
        return False
    return any(t.ggml_type in K_QUANT_TYPES for t in tensors)


def _old_quant_text(base: LegacyModel, what: str) -> str:
    return (
        f"{base.path.name} is a {base.label} file quantized as {what} by a llama.cpp from before "
        "May 2023. llama.cpp later changed how those quantized blocks are stored, and the file does "
        "not hold the original weights, so a conversion would give a broken model. Only F32 and F16 "
        "files that old can be converted. Download the model's GGUF version instead (most TheBloke "
        "and KoboldAI models have a repository ending in -GGUF)."
    )


def _qk_k_64_text(path: Path) -> str:
    return (
        f"{path.name} uses K-quant blocks of 64 values: it was made by a llama.cpp built with QK_K=64 "
        "(LLAMA_QKK_64), a build option today's llama.cpp no longer has. Its blocks cannot be "
        "copied into a GGUF that loads. Download the model's GGUF version instead."
    )


def _other_arch_text(base: LegacyModel, tensors: list[LegacyTensor]) -> str:
    name = base.path.name
    if base.architecture is Architecture.GPTJ:
        return (
            f"{name} is a GPT-J model from ggml's examples. llama.cpp has no GPT-J implementation, so "
            "there is nothing to convert it to. Choose a model from the catalog instead (KoboldAI's "
            "newer Holodeck models, for example, have GGUF versions)."
        )
    if base.architecture is Architecture.NEOX:
        return (
            f"{name} is a GPT-NeoX / Pythia model from ggml's examples. llama.cpp runs GPT-NeoX as "
            "GGUF, but that needs the tokenizer's merge rules, which this file does not hold. Look for "
            "a GGUF of this model, or choose one from the catalog."
        )
    first = tensors[0].name if tensors else "?"
    return (
        f"{name} has a {base.label} signature, but its tensors (the first is '{first}') are not "
        "those of a Llama model, so Hearth does not know how to convert it. Look for a GGUF "
        "version of this model."
    )


def _already_gguf(path: Path, size: int, version: int | None) -> LegacyModel:
    return LegacyModel(
        path=path,
        container="GGUF",
        version=version,
        architecture=Architecture.UNKNOWN,
        file_type_name="",
        file_size=size,
        convertible=False,
        refusal=RefusalKind.ALREADY_GGUF,
        explanation=f"{path.name} is already a GGUF file: load it directly, there is nothing to convert.",
    )


def _refuse(base: LegacyModel, kind: RefusalKind, text: str) -> LegacyModel:
    return replace(base, refusal=kind, explanation=text)
