"""Will this model fit? A memory estimate and a verdict in words for the Models tab.

memory ≈ file size (llama.cpp memory-maps the weights, so they count once)
       + KV cache (2 for K and V × n_layer × n_ctx × n_head_kv × head_dim × 2 bytes at f16)
       + compute buffers (scratch space for one batch; 0.1 to 0.5 GB in practice)

Inputs come from the file's GGUF metadata when there is a file, else from the catalog's
facts. When neither knows the model's shape, the estimate is derived from the file size
or the parameter count and says plainly that it is a rough guess.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from catalog.entries import CatalogEntry, QuantFile
from catalog.errors import CatalogError
from engine.types import ModelInfo

DEFAULT_N_CTX = 4096
F16_BYTES = 2
MEMINFO = Path("/proc/meminfo")
# Below these shares of the free memory a model fits comfortably, or at all. The margin
# leaves room for the browser and the OS, which MemAvailable does not reserve.
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
    """The three numbers the KV cache size depends on."""

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
class MemoryEstimate:
    """The parts of a model's memory use, in bytes, and how they were worked out."""

    weights_bytes: int
    kv_bytes: int
    overhead_bytes: int
    n_ctx: int
    rough: bool  # True when a part had to be guessed from size or parameter count
    basis: str  # in words, for a tooltip

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.overhead_bytes


@dataclass(frozen=True)
class FitResult:
    """An estimate set against the free memory."""

    estimate: MemoryEstimate
    available_bytes: int
    verdict: Verdict

    @property
    def badge(self) -> str:
        """One line for a badge, e.g. "~9.8 GB needed of 21.3 GB free — fits"."""
        needed = gigabytes(self.estimate.total_bytes)
        rough = " (rough guess)" if self.estimate.rough else ""
        return f"~{needed} needed{rough} of {gigabytes(self.available_bytes)} free — {self.verdict.value}"


def gigabytes(n_bytes: int) -> str:
    """Bytes as decimal gigabytes with one decimal, as the Hub shows sizes."""
    return f"{n_bytes / 1e9:.1f} GB"


def compute_overhead(weights_bytes: int) -> int:
    """Scratch buffers for one batch: about 100 MiB plus 5% of the weights, at most 512 MiB."""
    return min((100 << 20) + weights_bytes // 20, 512 << 20)


def estimate_for_model(
    info: ModelInfo, n_ctx: int | None = None, *, total_size: int | None = None
) -> MemoryEstimate:
    """The memory a local GGUF file needs at `n_ctx` (default: 4096, or less if the model's is less).

    Args:
        info: the file's facts from `engine.gguf_meta.model_info`.
        n_ctx: the context size the model will be loaded with.
        total_size: the size of all parts of a split model; `info.file_size` by default.
    """
    n_ctx = _context(n_ctx, info.context_length)
    weights = total_size or info.file_size
    shape = KVShape.from_model_info(info)
    if shape is not None:
        basis = "from the file's metadata"
        return _estimate(weights, shape.bytes_per_token() * n_ctx, n_ctx, rough=False, basis=basis)
    params = weights * 8 / BITS_PER_WEIGHT.get(info.quant.upper(), BITS_PER_WEIGHT["Q4_K_M"])
    return rough_estimate(weights, params, n_ctx)


def estimate_for_entry(
    entry: CatalogEntry, quant: str | None = None, n_ctx: int | None = None
) -> MemoryEstimate:
    """The memory a catalog model needs before it is downloaded.

    Args:
        entry: the catalog entry.
        quant: a quant name or file name; the recommended file by default.
        n_ctx: the context size; 4096 by default, or the model's own if smaller.
    """
    n_ctx = _context(n_ctx, entry.context_length or DEFAULT_N_CTX)
    chosen = entry.quant(quant) if quant else entry.recommended
    weights, weights_rough = _entry_weights(entry, chosen, quant)
    shape = KVShape.from_entry(entry)
    if shape is None:
        return rough_estimate(weights, entry.parameters, n_ctx)
    basis = "from the catalog's facts" + (
        " (file size guessed from the parameter count)" if weights_rough else ""
    )
    return _estimate(weights, shape.bytes_per_token() * n_ctx, n_ctx, rough=weights_rough, basis=basis)


def rough_estimate(weights_bytes: int, parameters: float, n_ctx: int) -> MemoryEstimate:
    """A clearly rough estimate when the model's shape is unknown: KV from the parameter count."""
    kv = int(parameters * ROUGH_KV_BYTES_PER_TOKEN_PER_PARAM * n_ctx)
    basis = (
        "rough guess: the model's layer sizes are unknown, so its memory per token was guessed from its size"
    )
    return _estimate(weights_bytes, kv, n_ctx, rough=True, basis=basis)


def check_fit(estimate: MemoryEstimate, available_bytes: int | None = None) -> FitResult:
    """Compare an estimate with the free memory (read from the system unless given).

    Raises:
        CatalogError: the free memory was not given and cannot be read.
    """
    available = available_memory() if available_bytes is None else available_bytes
    needed = estimate.total_bytes
    if needed <= available * FITS_SHARE:
        verdict = Verdict.FITS
    elif needed <= available * TIGHT_SHARE:
        verdict = Verdict.TIGHT
    else:
        verdict = Verdict.TOO_BIG
    return FitResult(estimate, available, verdict)


def available_memory(meminfo: Path = MEMINFO) -> int:
    """Free memory in bytes: MemAvailable from /proc/meminfo, else the free physical pages.

    Raises:
        CatalogError: neither source can be read on this system.
    """
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(":")
            if key == "MemAvailable":
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError) as exc:
        raise CatalogError("Hearth could not tell how much memory is free on this computer.") from exc


def _estimate(weights: int, kv: int, n_ctx: int, *, rough: bool, basis: str) -> MemoryEstimate:
    return MemoryEstimate(weights, kv, compute_overhead(weights), n_ctx, rough, basis)


def _entry_weights(entry: CatalogEntry, chosen: QuantFile | None, asked: str | None) -> tuple[int, bool]:
    if chosen is not None and chosen.size_bytes is not None:
        return chosen.size_bytes, False
    quant = (chosen.quant if chosen else asked or "Q4_K_M").upper()
    bits = BITS_PER_WEIGHT.get(quant, BITS_PER_WEIGHT["Q4_K_M"])
    return int(entry.parameters * bits / 8), True


def _context(n_ctx: int | None, model_ctx: int) -> int:
    if n_ctx is not None and n_ctx > 0:
        return n_ctx
    return min(DEFAULT_N_CTX, model_ctx) if model_ctx > 0 else DEFAULT_N_CTX
