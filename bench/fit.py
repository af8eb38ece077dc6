"""Hearth's memory estimate against what llama.cpp allocates, written to docs/benchmarks.md.

    .venv/bin/python bench/fit.py                 # about a minute on two cores
    .venv/bin/python bench/fit.py --out /tmp/fit.md

Each case loads a model with llama.cpp (engine.llama, which reads the buffer sizes
llama.cpp logs: "model buffer size", "KV buffer size", "compute buffer size") and sets
them beside `catalog.fit.estimate_memory` for the same file and settings. The models:
the bundled Gemma 3 270M (sliding-window attention, 256-wide heads, a 262k vocabulary),
and random-weight Llamas written on the spot (bench/gpu_model.py) with other layer
counts, grouped-query ratios, head widths and quantizations, Q4_0 included (which the
CPU rearranges into a second copy). Settings: contexts of 512 to 8192 tokens, flash
attention on and off, and KV caches in f16, q8_0 and q4_0.

A part is within tolerance when the estimate is within 5% or 64 MiB of llama.cpp's
number, whichever is larger; the report gives every case and the worst one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gpu_model import LlamaShape, write_llama
from bench.report import update_section
from catalog.bundled import bundled_model_path
from catalog.errors import BundledModelError
from catalog.fit import estimate_memory
from catalog.shape import shape_from_header
from engine.gguf import read_header
from engine.llama import LlamaCppBackend
from engine.types import LoadOptions

HEADING = "## Memory estimate against llama.cpp (issue 13)"
MIB = 1 << 20
TOLERANCE_SHARE = 0.05
TOLERANCE_BYTES = 64 * MIB
PARTS = ("model", "kv", "compute", "total")
# name → (shape, weights). Large heads and long contexts make the KV cache and the
# attention scores big enough that a wrong formula shows past the 64 MiB floor.
SHAPES: dict[str, tuple[LlamaShape, str]] = {
    "llama 8L GQA 4:1 hd128 q8_0": (
        LlamaShape(n_layer=8, n_embd=256, n_head=8, n_head_kv=2, n_ff=512, n_vocab=300, context=8192,
                   head_dim=128), "q8_0"),
    "llama 4L MHA hd128 f16": (
        LlamaShape(n_layer=4, n_embd=512, n_head=8, n_head_kv=8, n_ff=1024, n_vocab=300, context=8192,
                   head_dim=128), "f16"),
    "llama 12L GQA 8:1 32k vocab q4_0": (
        LlamaShape(n_layer=12, n_embd=1024, n_head=16, n_head_kv=2, n_ff=2816, n_vocab=32000,
                   context=8192), "q4_0"),
}  # fmt: skip
SETTINGS: tuple[tuple[int, str, str], ...] = (  # n_ctx, flash attention, KV cache type
    (512, "off", "f16"),
    (2048, "on", "f16"),
    (8192, "off", "f16"),
    (8192, "on", "f16"),
    (4096, "on", "q8_0"),
    (4096, "on", "q4_0"),
)


@dataclass(frozen=True)
class Comparison:
    """One load: llama.cpp's buffers and Hearth's estimate, per part, in bytes."""

    label: str
    options: LoadOptions
    measured: dict[str, int]
    predicted: dict[str, int]

    def error(self, part: str) -> float:
        """The estimate's error as a share of llama.cpp's number (positive: over)."""
        return (self.predicted[part] - self.measured[part]) / max(self.measured[part], 1)

    def within(self, part: str) -> bool:
        return self.used(part) <= 1.0

    def used(self, part: str) -> float:
        """How much of its tolerance a part's error uses (1.0: all of it)."""
        return tolerance_used(self.predicted[part], self.measured[part])

    def worst(self) -> tuple[str, float]:
        """The part whose error uses most of its tolerance, and its error share."""
        part = max(PARTS, key=self.used)
        return part, self.error(part)


def tolerance(measured: int) -> float:
    """The error allowed: 5% of llama.cpp's number, or 64 MiB, whichever is larger."""
    return max(TOLERANCE_SHARE * measured, TOLERANCE_BYTES)


def tolerance_used(predicted: int, measured: int) -> float:
    return abs(predicted - measured) / tolerance(measured)


def compare(path: Path, options: LoadOptions, label: str = "") -> Comparison:
    """Load `path` with `options`, and set llama.cpp's buffer sizes beside the estimate's."""
    shape = shape_from_header(read_header(path))
    if shape is None:
        raise ValueError(f"{path.name} has no layer count or width in its metadata.")
    backend = LlamaCppBackend(path, options)
    try:
        got = backend.buffers
        measured = {"model": got.size("model"), "kv": got.size("kv"),
                    "compute": got.size("compute") + got.size("output")}  # fmt: skip
    finally:
        backend.close()
    measured["total"] = sum(measured.values())
    layers = options.n_gpu_layers or 0
    predicted = estimate_memory(shape, options, n_ctx=options.n_ctx or 0, n_gpu_layers=layers).reported()
    return Comparison(label or path.name, options, measured, predicted)


def options_for(n_ctx: int, flash: str, cache: str) -> LoadOptions:
    return LoadOptions(n_ctx=n_ctx, threads=1, flash_attn=flash, cache_type_k=cache, cache_type_v=cache)  # type: ignore[arg-type]


def cases(scratch: Path) -> Iterator[tuple[str, Path]]:
    """(label, file) of every model measured: the bundled one, then the written shapes."""
    try:
        yield "Gemma 3 270M Q4_K_M (bundled)", bundled_model_path()
    except BundledModelError as exc:
        print(f"==> {exc} Measuring the written shapes only.")
    for label, (shape, weights) in SHAPES.items():
        name = label.replace(" ", "-").replace(":", "-")
        yield label, write_llama(scratch / f"{name}.gguf", shape, weights)


def run(scratch: Path) -> list[Comparison]:
    results = []
    for label, path in cases(scratch):
        for n_ctx, flash, cache in SETTINGS:
            result = compare(path, options_for(n_ctx, flash, cache), label)
            results.append(result)
            part, share = result.worst()
            print(f"{label:34} ctx {n_ctx:5} FA {flash:3} KV {cache:4} worst {part} {share:+.1%}", flush=True)
    return results


def mib(n_bytes: int) -> str:
    return f"{n_bytes / MIB:,.1f}"


def write_report(results: list[Comparison], command: str) -> str:
    worst = max(results, key=lambda r: r.used(r.worst()[0]))
    part, share = worst.worst()
    largest = max(results, key=lambda r: max(abs(r.predicted[p] - r.measured[p]) for p in PARTS))
    big_part = max(PARTS, key=lambda p: abs(largest.predicted[p] - largest.measured[p]))
    big_error = largest.predicted[big_part] - largest.measured[big_part]
    missed = [r for r in results for p in PARTS if not r.within(p)]
    rows = []
    for r in results:
        o = r.options
        cells = " | ".join(f"{mib(r.measured[p])} / {mib(r.predicted[p])}" for p in PARTS)
        rows.append(f"| {r.label} | {o.n_ctx} | {o.flash_attn} | {o.cache_type_k} | {cells} | "
                    f"{r.worst()[0]} {r.worst()[1]:+.1%} |")  # fmt: skip
    table = "\n".join(rows)
    verdict = "every part of every case is" if not missed else f"{len(missed)} parts are NOT"
    return f"""{HEADING}

Measured on {time.strftime("%Y-%m-%d")}, on the CPU (2 cores). Reproduce with `{command}`.
Each cell is llama.cpp's number / Hearth's estimate, in MiB; compute includes the
output (logits) buffer. Tolerance: 5% or 64 MiB, whichever is larger: {verdict} within it.

**Worst case** (the error that uses most of its tolerance): {part} of {worst.label}, n_ctx
{worst.options.n_ctx}, flash attention {worst.options.flash_attn}, KV {worst.options.cache_type_k}:
**{share:+.1%}**, {mib(worst.measured[part])} MiB measured and {mib(worst.predicted[part])} MiB
estimated ({worst.used(part):.0%} of the tolerance). Largest error in bytes: {big_error / MIB:+,.1f} MiB,
{big_part} of {largest.label}, n_ctx {largest.options.n_ctx}, flash attention {largest.options.flash_attn}.

| Model | n_ctx | Flash attn | KV cache | Model buffers | KV cache | Compute | Total | Worst |
|---|---|---|---|---|---|---|---|---|
{table}

The compute buffer is the one part that is modelled rather than counted: ggml reuses
memory between the steps of a batch's graph, so its size is the largest step (the
attention scores without flash attention, the feed-forward, or the logits of a whole
batch), and where a step's tensors land in the buffer moves it by a few MiB.
"""


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, help="default: docs/benchmarks.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        results = run(Path(scratch))
    section = write_report(results, ".venv/bin/python bench/fit.py")
    update_section(args.out or ROOT / "docs" / "benchmarks.md", HEADING, section)
    print(section)
    return section


if __name__ == "__main__":
    main()
