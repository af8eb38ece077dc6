"""Will this model fit? Its memory, part by part, as llama.cpp will allocate it.

memory = weights (the layers on the GPU there, the rest in RAM, plus the CPU's
           rearranged copies of some quantized matrices; see `catalog.shape`)
       + KV cache (context × Σ over layers of n_head_kv × (K row + V row), each row
           head_dim values of the cache type: 2 bytes at f16, 34/32 at q8_0, 18/32 at q4_0)
       + compute buffers (the largest step of one batch's graph: the attention scores
           without flash attention, the feed-forward, or the logits of a batch)

The parts are what llama.cpp reports when it loads ("model/KV/compute buffer size");
`tests/test_fit_measured.py` and `bench/fit.py` hold the estimate to 5% or 64 MiB of them.
Inputs come from the file's GGUF header, else from the catalog's facts; when neither
knows the model's shape, the estimate is a rough guess from its size and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import psutil

from catalog.entries import CatalogEntry
from catalog.errors import CatalogError
from catalog.shape import F32, ModelShape, compute_bytes, repacks_here, shape_from_facts
from engine.types import LoadOptions, ModelInfo

DEFAULT_N_CTX = 4096
CTX_ROUNDING = 256  # llama.cpp rounds the context up to a multiple of this
F16_BYTES = 2
# Below these shares of the free memory a model fits comfortably, or at all. The margin
# leaves room for the browser and the OS, which "available" memory does not reserve.
FITS_SHARE = 0.85
TIGHT_SHARE = 1.0
# Approximate bits per weight of common quants, measured from Llama-2 13B files; used only
# when the catalog has no file size for a quant.
BITS_PER_WEIGHT = {
    "Q2_K": 3.35,
    "Q3_K_S": 3.5,
    "Q3_K_M": 3.9,
    "Q3_K_L": 4.27,
    "Q4_0": 4.55,
    "Q4_K_S": 4.57,
    "Q4_K_M": 4.85,
    "Q5_0": 5.52,
    "Q5_K_S": 5.52,
    "Q5_K_M": 5.68,
    "Q6_K": 6.57,
    "Q8_0": 8.5,
    "F16": 16.0,
    "BF16": 16.0,
    "F32": 32.0,
}
# A Llama-shaped model without grouped-query attention holds about this many KV bytes per
# token per parameter (Llama-2 7B: 0.5 MiB per token). Models with GQA hold less, so this
# errs on the safe side.
ROUGH_KV_BYTES_PER_TOKEN_PER_PARAM = 8e-5


class Verdict(StrEnum):
    """How a model's estimated memory compares with the free memory."""

    FITS = "fits"
    TIGHT = "tight"
    TOO_BIG = "too big"


@dataclass(frozen=True)
class KVShape:
    """The three numbers the KV cache size depends on (when nothing more is known)."""

    n_layer: int
    n_head_kv: int
    head_dim: int

    def bytes_per_token(self, bytes_per_element: int = F16_BYTES) -> int:
        """KV bytes one token of context costs: K and V, every layer, every KV head."""
        return 2 * self.n_layer * self.n_head_kv * self.head_dim * bytes_per_element

    @classmethod
    def from_model_info(cls, info: ModelInfo, head_dim: int | None = None) -> KVShape | None:
        """From a file's facts; None when the metadata lacks them."""
        if not (info.n_layers and info.n_head and info.n_embd):
            return None
        dim = head_dim or info.n_embd // info.n_head
        return cls(info.n_layers, info.n_head_kv or info.n_head, dim)

    @classmethod
    def from_entry(cls, entry: CatalogEntry) -> KVShape | None:
        """From the catalog's facts; None when the catalog does not know them."""
        kv = entry.kv
        return None if kv is None else cls(kv.n_layer, kv.n_head_kv, kv.head_dim)


@dataclass(frozen=True)
class Split:
    """Bytes of one part of the memory, on the GPU and in RAM."""

    gpu: int = 0
    host: int = 0

    @property
    def total(self) -> int:
        return self.gpu + self.host


@dataclass(frozen=True)
class MemoryEstimate:
    """The parts of a model's memory use, in bytes, and how they were worked out.

    `weights` counts each weight once where it lives; llama.cpp's own report adds
    `mapped_extra`: the stretch of the memory-mapped file whose matrices the CPU
    rearranged into copies, which stays mapped but is not used after the load.
    """

    weights: Split
    kv: Split
    compute: Split  # compute buffers and the logits' output buffer
    n_ctx: int
    rough: bool  # True when a part had to be guessed from size or parameter count
    basis: str  # in words, for a tooltip
    n_gpu_layers: int = 0  # of `n_layers`, on the GPU
    n_layers: int = 0  # the repeating layers and the output layer, as llama.cpp counts them
    flash_attn: bool = False
    mapped_extra: int = 0

    @property
    def weights_bytes(self) -> int:
        return self.weights.total

    @property
    def kv_bytes(self) -> int:
        return self.kv.total

    @property
    def overhead_bytes(self) -> int:
        return self.compute.total

    @property
    def total_bytes(self) -> int:
        return self.weights.total + self.kv.total + self.compute.total

    @property
    def gpu_bytes(self) -> int:
        return self.weights.gpu + self.kv.gpu + self.compute.gpu

    @property
    def ram_bytes(self) -> int:
        return self.weights.host + self.kv.host + self.compute.host

    def reported(self) -> dict[str, int]:
        """The estimate as llama.cpp's load log reports it: model, KV and compute buffers
        (the output buffer counted with compute), and their total."""
        parts = {
            "model": self.weights.total + self.mapped_extra,
            "kv": self.kv.total,
            "compute": self.compute.total,
        }
        return {**parts, "total": sum(parts.values())}


@dataclass(frozen=True)
class FitResult:
    """An estimate's RAM part set against the free memory."""

    estimate: MemoryEstimate
    available_bytes: int
    verdict: Verdict

    @property
    def badge(self) -> str:
        """One line for a badge, e.g. "~9.8 GB needed of 21.3 GB free — fits"."""
        needed = gigabytes(self.estimate.ram_bytes)
        rough = " (rough guess)" if self.estimate.rough else ""
        return f"~{needed} needed{rough} of {gigabytes(self.available_bytes)} free — {self.verdict.value}"


def gigabytes(n_bytes: int) -> str:
    """Bytes as decimal gigabytes with one decimal, as the Hub shows sizes."""
    return f"{n_bytes / 1e9:.1f} GB"


def context_cells(n_ctx: int) -> int:
    """The KV cells llama.cpp allocates for `n_ctx` tokens: rounded up to a multiple of 256."""
    return -(-n_ctx // CTX_ROUNDING) * CTX_ROUNDING


def compute_overhead(weights_bytes: int) -> int:
    """Scratch buffers when the model's shape is unknown: about 100 MiB plus 5% of the
    weights, at most 512 MiB."""
    return min((100 << 20) + weights_bytes // 20, 512 << 20)


def estimate_memory(
    shape: ModelShape,
    options: LoadOptions,
    *,
    n_ctx: int,
    n_gpu_layers: int = 0,
    repack: bool | None = None,
) -> MemoryEstimate:
    """A model's memory at `n_ctx` with `n_gpu_layers` on the GPU (-1: all), as llama.cpp lays it out.

    Args:
        shape: from `catalog.shape` (a file's header, or the catalog's facts).
        options: the cache types, batch sizes, flash attention and mmap settings.
        n_gpu_layers: layers on the GPU, of n_layer + 1 (the output layer counts as one);
            give 0 when the llama.cpp build cannot offload.
        repack: whether the CPU rearranges Q4_0/Q4_K/IQ4_NL matrices (default: x86-64 and ARM).
    """
    layers = shape.n_layer
    offloaded = layers + 1 if n_gpu_layers < 0 else min(n_gpu_layers, layers + 1)
    on_gpu = range(layers - min(offloaded, layers), layers)
    output_on_gpu = offloaded > layers
    flash = options.uses_flash_attn(offloading=offloaded > 0)
    cells = context_cells(n_ctx)
    weights, mapped_extra = _weights(shape, on_gpu, output_on_gpu, options.use_mmap,
                                     repacks_here() if repack is None else repack)  # fmt: skip
    kv_gpu = cells * shape.kv_bytes_per_token(options.cache_type_k, options.cache_type_v, on_gpu)
    kv_all = cells * shape.kv_bytes_per_token(options.cache_type_k, options.cache_type_v)
    u = max(1, min(options.n_ubatch, options.n_batch, n_ctx))
    graph = compute_bytes(shape, cells, u, flash_attn=flash)
    output = shape.n_vocab * F32  # the logits of the last token, kept between calls
    if offloaded == 0:
        compute = Split(0, graph + output)
    else:  # the host keeps a small buffer for the inputs, or the whole graph's CPU part
        host = graph if offloaded <= layers else 2 * shape.n_embd * u * F32
        compute = Split(graph, host + output)
    basis = "from the file's tensors" if shape.exact else "from the catalog's facts (sizes per layer guessed)"
    return MemoryEstimate(
        weights=weights,
        kv=Split(kv_gpu, kv_all - kv_gpu),
        compute=compute,
        n_ctx=cells,
        rough=False,
        basis=basis,
        n_gpu_layers=offloaded,
        n_layers=layers + 1,
        flash_attn=flash,
        mapped_extra=mapped_extra,
    )


def _weights(
    shape: ModelShape, on_gpu: range, output_on_gpu: bool, mmap: bool, repack: bool
) -> tuple[Split, int]:
    gpu = sum(shape.layer_bytes[i] for i in on_gpu) + (shape.output_bytes if output_on_gpu else 0)
    if not shape.weights:  # catalog facts: no tensor table
        copy = shape.output_bytes if shape.output_tied and output_on_gpu else 0  # the GPU's own
        return Split(gpu, shape.file_bytes - gpu + copy), 0
    kept = [
        w
        for w in shape.weights
        if not (w.layer in on_gpu if w.layer is not None else output_on_gpu and w.name.startswith("output"))
    ]
    copies = [w for w in kept if repack and w.repackable]
    mapped = [w for w in kept if not (repack and w.repackable)]
    host = sum(w.size for w in kept)
    if not mmap or not mapped:
        return Split(gpu, host), 0
    span = max(w.offset + w.size for w in mapped) - min(w.offset for w in mapped)
    return Split(gpu, host), max(0, span - (host - sum(w.size for w in copies)))


def estimate_for_model(
    info: ModelInfo,
    n_ctx: int | None = None,
    *,
    total_size: int | None = None,
    shape: ModelShape | None = None,
    options: LoadOptions | None = None,
) -> MemoryEstimate:
    """The memory a local GGUF file needs at `n_ctx` (default: 4096, or less if the model's
    is less), on the CPU.

    Args:
        info: the file's facts from `engine.gguf.model_info`.
        n_ctx: the context size the model will be loaded with.
        total_size: the size of all parts of a split model; `info.file_size` by default.
        shape: the file's tensors (`catalog.shape.shape_from_header`): an exact estimate.
        options: cache types, batch sizes and flash attention (Hearth's defaults if None).
    """
    n_ctx = _context(n_ctx, info.context_length)
    if shape is not None:
        return estimate_memory(shape, options or LoadOptions(), n_ctx=n_ctx)
    weights = total_size or info.file_size
    kv = KVShape.from_model_info(info)
    if kv is not None:
        basis = "from the file's metadata"
        return _simple(weights, kv.bytes_per_token() * n_ctx, n_ctx, rough=False, basis=basis)
    params = weights * 8 / BITS_PER_WEIGHT.get(info.quant.upper(), BITS_PER_WEIGHT["Q4_K_M"])
    return rough_estimate(weights, params, n_ctx)


def estimate_for_entry(
    entry: CatalogEntry, quant: str | None = None, n_ctx: int | None = None
) -> MemoryEstimate:
    """The memory a catalog model needs before it is downloaded, on the CPU.

    Args:
        entry: the catalog entry.
        quant: a quant name or file name; the recommended file by default.
        n_ctx: the context size; 4096 by default, or the model's own if smaller.
    """
    n_ctx = _context(n_ctx, entry.context_length or DEFAULT_N_CTX)
    weights, guessed = entry_weights(entry, quant)
    shape = shape_for_entry(entry, quant)
    if shape is None:
        return rough_estimate(weights, entry.parameters, n_ctx)
    estimate = estimate_memory(shape, LoadOptions(), n_ctx=n_ctx)
    if guessed:
        basis = "from the catalog's facts (file size guessed from the parameter count)"
        return replace(estimate, basis=basis, rough=True)
    return estimate


def shape_for_entry(entry: CatalogEntry, quant: str | None = None) -> ModelShape | None:
    """A catalog model's shape from its facts; None when the catalog lacks them."""
    if entry.kv is None:
        return None
    weights, _ = entry_weights(entry, quant)
    return shape_from_facts(entry.kv, weights, entry.parameters, entry.context_length or DEFAULT_N_CTX)


def entry_weights(entry: CatalogEntry, quant: str | None = None) -> tuple[int, bool]:
    """Bytes of a catalog model's file (the recommended one by default), and whether that
    was guessed from the parameter count because the catalog has no size for it."""
    chosen = entry.quant(quant) if quant else entry.recommended
    if chosen is not None and chosen.size_bytes is not None:
        return chosen.size_bytes, False
    name = (chosen.quant if chosen else quant or "Q4_K_M").upper()
    bits = BITS_PER_WEIGHT.get(name, BITS_PER_WEIGHT["Q4_K_M"])
    return int(entry.parameters * bits / 8), True


def rough_estimate(weights_bytes: int, parameters: float, n_ctx: int) -> MemoryEstimate:
    """A clearly rough estimate when the model's shape is unknown: KV from the parameter count."""
    kv = int(parameters * ROUGH_KV_BYTES_PER_TOKEN_PER_PARAM * n_ctx)
    basis = (
        "rough guess: the model's layer sizes are unknown, so its memory per token was guessed from its size"
    )
    return _simple(weights_bytes, kv, n_ctx, rough=True, basis=basis)


def check_fit(estimate: MemoryEstimate, available_bytes: int | None = None) -> FitResult:
    """Compare an estimate's RAM part with the free memory (read from the system unless given)."""
    available = available_memory() if available_bytes is None else available_bytes
    needed = estimate.ram_bytes
    if needed <= available * FITS_SHARE:
        verdict = Verdict.FITS
    elif needed <= available * TIGHT_SHARE:
        verdict = Verdict.TIGHT
    else:
        verdict = Verdict.TOO_BIG
    return FitResult(estimate, available, verdict)


def available_memory() -> int:
    """Free memory in bytes: what the system can give a new program without swapping.

    Raises:
        CatalogError: the system does not say.
    """
    try:
        return int(psutil.virtual_memory().available)
    except (OSError, RuntimeError, AttributeError) as exc:
        raise CatalogError("Hearth could not tell how much memory is free on this computer.") from exc


def _simple(weights: int, kv: int, n_ctx: int, *, rough: bool, basis: str) -> MemoryEstimate:
    compute = Split(0, compute_overhead(weights))
    return MemoryEstimate(Split(0, weights), Split(0, kv), compute, n_ctx, rough, basis)


def _context(n_ctx: int | None, model_ctx: int) -> int:
    if n_ctx is not None and n_ctx > 0:
        return n_ctx
    return min(DEFAULT_N_CTX, model_ctx) if model_ctx > 0 else DEFAULT_N_CTX
