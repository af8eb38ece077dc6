"""A load plan: how many layers go on the GPU and how long a context, for one model on
this machine, and the same in words for the Models tab.

"auto" (None in `LoadOptions`) is decided the way llama.cpp's own `--fit` decides:

1. every layer on the GPU (when the llama.cpp build can offload and there is a GPU),
   with the longest context: the model's trained one, up to `AUTO_CTX_CAP`;
2. if that does not fit, a shorter context, down to `FIT_CTX` (or the trained one if
   shorter), with every layer still on the GPU;
3. then fewer layers on the GPU at that context;
4. then, on the CPU, shorter contexts still, down to `SMALLEST_CTX`.

A plan fits when its GPU part leaves `GPU_MARGIN` of the GPU free (llama.cpp keeps
1 GiB by default) and its RAM part is within `FITS_SHARE` of the free RAM. With unified
memory (Apple Silicon) both come out of the RAM. What the user set by hand is kept,
even when it does not fit; the plan then says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from catalog.fit import FITS_SHARE, MemoryEstimate, estimate_memory
from catalog.hardware import Machine
from catalog.shape import ModelShape
from engine.types import LoadOptions

AUTO_CTX_CAP = 8192
"""The longest context "auto" picks: a longer one costs memory and prompt time that a chat
or a story rarely needs. A number asks for exactly that many tokens."""
FIT_CTX = 4096  # the context "auto" keeps before moving layers off the GPU (llama.cpp's --fit-ctx)
SMALLEST_CTX = 512
GPU_MARGIN = 1 << 30
GPU_SHORTFALL_WEIGHT = 4
DEFAULT_TRAINED = 4096  # when a file does not say what it was trained on
QUANT_BLOCK = 32  # values per block of a q8_0 or q4_0 cache


@dataclass(frozen=True)
class LoadPlan:
    """Where a model will go and how much memory it will take there."""

    options: LoadOptions  # with `n_ctx` and `n_gpu_layers` decided
    estimate: MemoryEstimate
    machine: Machine
    offload: bool  # the build can put layers on a GPU, and there is one
    fits: bool
    notes: tuple[str, ...] = ()  # what was decided for the user, in words

    @property
    def n_ctx(self) -> int:
        return self.estimate.n_ctx

    @property
    def n_gpu_layers(self) -> int:
        return self.estimate.n_gpu_layers

    def words(self) -> str:
        """e.g. "38/41 layers on the GPU, 4,096 context, about 9.1 GB of 12.0 GB free" or
        "CPU only, 8,192 context, about 0.9 GB of 20.1 GB free RAM"."""
        e, m = self.estimate, self.machine
        where = "CPU only"
        if e.n_gpu_layers:
            where = f"{e.n_gpu_layers}/{e.n_layers} layers on the GPU"
        head = f"{where}, {e.n_ctx:,} context"
        if e.n_gpu_layers and not m.unified:
            ram = f" and {_gb(e.ram_bytes)} of RAM" if e.ram_bytes >= 0.05e9 else ""
            size = f"about {_gb(e.gpu_bytes)} of {_gb(m.gpu_free)} free{ram}"
        else:
            size = f"about {_gb(e.total_bytes)} of {_gb(m.ram_free)} free {'memory' if m.unified else 'RAM'}"
        rough = " (rough guess)" if e.rough else ""
        verdict = "" if self.fits else " — too big for this computer"
        return f"{head}, {size}{rough}{verdict}"


def plan_load(
    shape: ModelShape, options: LoadOptions, machine: Machine, *, offload_supported: bool
) -> LoadPlan:
    """Decide the "auto" parts of `options` for `shape` on `machine`.

    Args:
        offload_supported: whether the installed llama.cpp build can use a GPU
            (`engine.llama.gpu_offload_supported`).
    """
    notes: list[str] = []
    offload = offload_supported and machine.has_gpu
    asked_layers = options.n_gpu_layers
    if asked_layers and not offload_supported:
        notes.append(
            f"This llama.cpp build cannot use a GPU, so the model runs on the CPU ({_layers(asked_layers)} "
            "were asked for). Reinstall it for your GPU: see the README's Platforms and GPUs."
        )
    options = _storable_cache(shape, options, notes)
    if options.cache_type_v != "f16" and options.flash_attn == "off":
        notes.append("A quantized V cache needs flash attention, so flash attention is on.")
    every = shape.n_layer + 1
    if not offload:
        layer_choices: list[int] = [0]
    elif asked_layers is None:
        # With unified memory a layer off the GPU saves nothing: only the context can shrink.
        layer_choices = [every] if machine.unified else list(range(every, -1, -1))
    else:
        layer_choices = [every if asked_layers < 0 else min(asked_layers, every)]
    trained = shape.context_length or DEFAULT_TRAINED
    if options.n_ctx is None:
        top = min(trained, AUTO_CTX_CAP)
        contexts = [top] + [c for c in (8192, 4096, 2048, 1024, SMALLEST_CTX) if c < top]
    else:
        contexts = [options.n_ctx]

    def estimate(n_ctx: int, layers: int) -> MemoryEstimate:
        return estimate_memory(shape, options, n_ctx=n_ctx, n_gpu_layers=layers)

    chosen: MemoryEstimate | None = None
    closest: tuple[float, MemoryEstimate] | None = None
    for n_ctx, layers in _candidates(contexts, layer_choices, min(FIT_CTX, contexts[0])):
        trial = estimate(n_ctx, layers)
        short = overflow(trial, machine)
        if short <= 0:
            chosen = trial
            break
        if closest is None or short < closest[0]:
            closest = (short, trial)
    fit = chosen is not None
    if chosen is None:  # nothing fits: the plan that misses by least, and the words say so
        assert closest is not None
        chosen = closest[1]
    planned = replace(options, n_ctx=chosen.n_ctx, n_gpu_layers=chosen.n_gpu_layers)
    return LoadPlan(planned, chosen, machine, offload, fit, tuple(notes))


def fits(estimate: MemoryEstimate, machine: Machine) -> bool:
    """Whether an estimate leaves the margins free: GPU_MARGIN on the GPU, and 15% of the RAM."""
    return overflow(estimate, machine) <= 0


def overflow(estimate: MemoryEstimate, machine: Machine) -> float:
    """How far an estimate misses the margins, in bytes (0 or less: it fits). A GPU that is
    short counts four times: a load fails there, where the RAM can still page the file."""
    ram_budget = machine.ram_free * FITS_SHARE
    if machine.unified:
        return estimate.total_bytes - ram_budget
    over_ram = max(0.0, estimate.ram_bytes - ram_budget)
    over_gpu = max(0, estimate.gpu_bytes - (machine.gpu_free - GPU_MARGIN)) if estimate.gpu_bytes else 0
    return over_ram + GPU_SHORTFALL_WEIGHT * over_gpu


def fewer(options: LoadOptions, n_layers: int) -> LoadOptions | None:
    """The next, smaller thing to try after llama.cpp ran out of memory: a quarter of the
    layers off the GPU, else half the context; None when nothing is left to shrink."""
    layers = n_layers if (options.n_gpu_layers or 0) < 0 else options.n_gpu_layers or 0
    if layers > 0:
        return replace(options, n_gpu_layers=max(0, layers - max(1, n_layers // 4)))
    n_ctx = options.n_ctx or FIT_CTX
    if n_ctx > SMALLEST_CTX:
        return replace(options, n_gpu_layers=0, n_ctx=max(SMALLEST_CTX, n_ctx // 2))
    return None


def _storable_cache(shape: ModelShape, options: LoadOptions, notes: list[str]) -> LoadOptions:
    """f16 for a cache whose quantized blocks (32 values) would straddle two heads: llama.cpp
    refuses such a context."""
    kinds = {"K": options.cache_type_k, "V": options.cache_type_v}
    for part, width in (("K", shape.head_dim_k), ("V", shape.head_dim_v)):
        if kinds[part] != "f16" and width % QUANT_BLOCK:
            notes.append(
                f"This model's attention heads are {width} wide, which a {kinds[part]} cache cannot "
                f"hold (it stores blocks of {QUANT_BLOCK}), so its {part} cache stays f16."
            )
            kinds[part] = "f16"
    return replace(options, cache_type_k=kinds["K"], cache_type_v=kinds["V"])


def _candidates(contexts: list[int], layers: list[int], floor: int) -> Iterator[tuple[int, int]]:
    most = layers[0]
    yield from ((c, most) for c in contexts if c >= floor)
    kept = min((c for c in contexts if c >= floor), default=contexts[-1])
    yield from ((kept, n) for n in layers[1:])
    yield from ((c, layers[-1]) for c in contexts if c < floor)


def _layers(n: int) -> str:
    return "all GPU layers" if n < 0 else f"{n} GPU layer" + ("s" if n != 1 else "")


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 0.1e9 else f"{n_bytes / 1e6:.0f} MB"
