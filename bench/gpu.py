"""GPU offload on a machine with an NVIDIA GPU, measured side by side, written to docs/benchmarks.md.

    scripts/bootstrap.sh app && .venv/bin/python bench/gpu.py     # minutes, once built
    .venv/bin/python bench/gpu.py --sdist llama_cpp_python-0.3.36.tar.gz   # build from a local sdist
    .venv/bin/python bench/gpu.py --cpu-smoke --out /tmp/smoke.md  # the whole script, on the CPU

1. The build: when this venv's llama-cpp-python cannot offload (`scripts/accelerator.py
   offload`), scripts/install_llama.sh rebuilds it with HEARTH_GPU=cuda, from --sdist
   (or $HEARTH_LLAMA_SDIST) when given, else from PyPI. Without internet, pip's own
   PIP_NO_INDEX=1 and PIP_FIND_LINKS=<folder of wheels> supply the build's tools.
2. The model, every layer on the GPU: --model if given; else the bundled Gemma 3 270M
   where installed; else (or with --synthetic) a random-weight Llama GGUF of TinyLlama
   1.1B's shape, written on the spot (bench/gpu_model.py).
3. Memory: what loading it allocated on the GPU (nvidia-smi's memory.used before and
   after, CUDA context included) and in host RSS (psutil), beside Hearth's estimate.
4. Throughput: tokens/s of one greedy reply generated through Hearth's own path
   (ModelManager with the llama.cpp factory: its Run, worker thread and stop filter)
   divided by raw llama-cpp-python (engine.llama.open_llama, streamed create_completion)
   on the same prompt tokens; app and raw alternate, and the median per-pair ratio counts.

`--cpu-smoke` runs every step but the build on a tiny model with no GPU layers, to prove
the script works on a machine without a GPU; it writes only where --out says.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gpu_model import TINY, TINYLLAMA_1B, write_llama
from bench.report import update_section
from catalog.bundled import bundled_model_path
from catalog.errors import BundledModelError
from catalog.fit import MemoryEstimate, estimate_for_model, estimate_memory
from catalog.shape import shape_from_header
from engine.gguf import read_header
from engine.manager import ModelManager
from engine.prompts import Turn, chat_parts, fit_prompt
from engine.types import GenerationRequest, LoadOptions, ModelInfo
from presets.formats import Speakers, load_builtin_formats
from presets.samplers import load_builtin_presets

HEADING = "## GPU offload (issue 13)"
FORMAT = "alpaca"  # greedy Gemma writes a full-length reply in it (as in bench/core.py)
QUESTION = "Write a long story about a lighthouse keeper and a storm at sea."
SPEAKERS = Speakers("User", "Assistant")


@dataclass(frozen=True)
class Setup:
    """How the model is loaded and driven."""

    n_gpu_layers: int
    threads: int
    n_ctx: int
    tokens: int
    trials: int


@dataclass(frozen=True)
class Sample:
    seconds: float
    tokens: int

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


@dataclass(frozen=True)
class Result:
    """Everything the report says."""

    device: str
    build: str
    info: ModelInfo
    setup: Setup
    load_s: float
    gpu_bytes: int | None  # None without nvidia-smi
    rss_bytes: int
    estimate: MemoryEstimate
    app: list[Sample]
    raw: list[Sample]

    @property
    def ratio(self) -> float:
        return statistics.median(a.rate / r.rate for a, r in zip(self.app, self.raw, strict=True))


# -- the machine and the build -------------------------------------------------------------------


def nvidia_smi(*query: str) -> list[str]:
    """Rows of an nvidia-smi query (csv, no header, no units); [] without an NVIDIA GPU."""
    if shutil.which("nvidia-smi") is None:
        return []
    done = subprocess.run(["nvidia-smi", *query, "--format=csv,noheader,nounits"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def gpu_memory_used() -> int | None:
    """Bytes in use on all NVIDIA GPUs together, or None without nvidia-smi."""
    rows = nvidia_smi("--query-gpu=memory.used")
    return sum(int(float(row)) for row in rows) << 20 if rows else None


def device_name(cpu_only: bool) -> str:
    gpus = [] if cpu_only else nvidia_smi("--query-gpu=name")
    return ", ".join(gpus) if gpus else f"an {platform.machine()} CPU ({os.cpu_count()} logical cores)"


def accelerator(command: str) -> subprocess.CompletedProcess[str]:
    """scripts/accelerator.py in this Python, where llama_cpp may be imported."""
    script = str(ROOT / "scripts" / "accelerator.py")
    return subprocess.run([sys.executable, script, command], capture_output=True, text=True, check=False)


def ensure_gpu_build(sdist: str | None) -> None:
    """Rebuild llama-cpp-python for CUDA unless this venv's build already offloads.

    Raises:
        SystemExit: no NVIDIA GPU, or the build still cannot offload (its log says why).
    """
    if not nvidia_smi("--query-gpu=name"):
        raise SystemExit("No NVIDIA GPU (nvidia-smi lists none). On a machine without one, use --cpu-smoke.")
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        raise SystemExit("Run this with .venv/bin/python: the build goes into .venv/ (scripts/bootstrap.sh).")
    if accelerator("offload").returncode == 0:
        print(f"==> This venv's llama-cpp-python ({accelerator('installed').stdout.strip()}) offloads.")
        return
    env = {**os.environ, "HEARTH_GPU": "cuda"}
    if sdist:
        env["HEARTH_LLAMA_SDIST"] = str(Path(sdist).resolve())
    subprocess.run(["bash", str(ROOT / "scripts" / "install_llama.sh")], env=env, check=True)
    if accelerator("offload").returncode != 0:
        raise SystemExit("llama-cpp-python still cannot offload to the GPU; see .venv/llama-build.log.")


def fit_estimate(info: ModelInfo, n_ctx: int, n_gpu_layers: int) -> MemoryEstimate:
    """Hearth's estimate of the memory the model needs at `n_ctx` with `n_gpu_layers` on the
    GPU (catalog.fit, from the file's tensors); its GPU part is set against the GPU allocation."""
    shape = shape_from_header(read_header(Path(info.path)))
    if shape is None:
        return estimate_for_model(info, n_ctx)
    return estimate_memory(shape, LoadOptions(), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers)


# -- the model ---------------------------------------------------------------------------------


def choose_model(args: argparse.Namespace, scratch: Path) -> Path:
    if args.model:
        return Path(args.model)
    if args.cpu_smoke:
        return write_llama(scratch / "tiny-llama-q8_0.gguf", TINY, "q8_0")
    if not args.synthetic:
        try:
            return bundled_model_path()
        except BundledModelError as exc:
            print(f"==> {exc} Writing a random 1.1B model instead.")
    print(f"==> Writing a random-weight Llama of TinyLlama 1.1B's shape ({args.weights})")
    return write_llama(scratch / f"random-llama-1.1b-{args.weights}.gguf", TINYLLAMA_1B, args.weights)


# -- measuring -----------------------------------------------------------------------------------


def measure(path: Path, setup: Setup, device: str) -> Result:
    from engine.llama import open_llama  # here: llama_cpp loads only after the build step

    options = LoadOptions(n_ctx=setup.n_ctx, threads=setup.threads, n_gpu_layers=setup.n_gpu_layers)
    gpu_before, rss_before = gpu_memory_used(), psutil.Process().memory_info().rss
    manager = ModelManager()
    began = time.perf_counter()
    info = manager.load(path, options)
    load_s = time.perf_counter() - began
    gpu_after, rss_after = gpu_memory_used(), psutil.Process().memory_info().rss
    gpu_bytes = None if gpu_before is None or gpu_after is None else gpu_after - gpu_before
    backend = manager.backend
    estimate = fit_estimate(info, backend.n_ctx, setup.n_gpu_layers)

    fmt = load_builtin_formats()[FORMAT]
    prompt = fit_prompt(chat_parts(fmt, "", [Turn("user", QUESTION)], SPEAKERS), 10**6, len).text
    params = load_builtin_presets()["Deterministic"].params
    params = type(params).from_mapping({"max_new_tokens": setup.tokens}, base=params)
    stop = fmt.stop_strings(SPEAKERS)
    request = GenerationRequest(prompt, params, stop)
    llm = open_llama(path, options)
    bos = [llm.token_bos()] if backend.adds_bos else []
    tokens = bos + backend.tokenize(prompt)  # exactly what the backend evaluates

    def app() -> Sample:
        began = time.perf_counter()
        finish = manager.start(request, owner="bench").wait(timeout=1800)
        return Sample(time.perf_counter() - began, finish.usage.completion_tokens)

    def raw() -> Sample:
        began = time.perf_counter()
        text, reason = "", None
        for chunk in llm.create_completion(
            tokens, max_tokens=setup.tokens, temperature=0.0, top_k=1, top_p=1.0, min_p=0.0,
            repeat_penalty=1.0, stop=list(stop), seed=0, stream=True,
        ):  # fmt: skip
            choice: Any = chunk["choices"][0]  # type: ignore[index]
            text, reason = text + choice["text"], choice["finish_reason"]
        seconds = time.perf_counter() - began
        count = setup.tokens if reason == "length" else len(llm.tokenize(text.encode(), add_bos=False))
        return Sample(seconds, count)

    try:
        app(), raw()  # warm both up: first calls pay one-off costs
        app_samples, raw_samples = [], []
        for _ in range(setup.trials):
            app_samples.append(app())
            raw_samples.append(raw())
    finally:
        llm.close()
        manager.unload()
    build = accelerator("installed").stdout.strip() or metadata.version("llama-cpp-python")
    return Result(device, build, info, setup, load_s, gpu_bytes, max(0, rss_after - rss_before), estimate,
                  app_samples, raw_samples)  # fmt: skip


# -- the report ----------------------------------------------------------------------------------


def size(n_bytes: int) -> str:
    """Decimal gigabytes with two decimals, or megabytes below 0.1 GB (the smoke's tiny model)."""
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 10**8 else f"{n_bytes / 1e6:.1f} MB"


def write_report(result: Result, command: str) -> str:
    s, info, est = result.setup, result.info, result.estimate
    app = statistics.median(x.rate for x in result.app)
    raw = statistics.median(x.rate for x in result.raw)
    tokens = statistics.median(x.tokens for x in result.raw)
    layers = "all" if s.n_gpu_layers < 0 else str(s.n_gpu_layers)
    parts = f"weights {size(est.weights_bytes)} + KV {size(est.kv_bytes)} + buffers " \
            f"{size(est.overhead_bytes)}"  # fmt: skip
    if result.gpu_bytes:
        allocated = f"**{size(result.gpu_bytes)}** on the GPU (nvidia-smi, CUDA context included)"
        versus = f"{(est.gpu_bytes or est.total_bytes) / result.gpu_bytes:.2f} × the GPU allocation"
    else:
        allocated = "no GPU memory (no nvidia-smi)"
        versus = f"{est.total_bytes / max(result.rss_bytes, 1):.2f} × the host memory the load added"
    return f"""{HEADING}

Measured on {time.strftime("%Y-%m-%d")} on {result.device}; llama-cpp-python {result.build};
{info.name} ({info.quant}, {size(info.file_size)}); GPU layers: {layers}; n_ctx {s.n_ctx};
{s.threads} threads; greedy replies of {s.tokens} tokens at most, {s.trials} app/raw pairs.
Reproduce with `{command}`.

| What | Result |
|---|---|
| Tokens/s through Hearth (ModelManager) ÷ raw llama-cpp-python | **{result.ratio:.3f}** \
({app:.1f} vs {raw:.1f} tokens/s, {tokens:.0f}-token replies) |
| Memory the load allocated | {allocated}; host RSS grew {size(result.rss_bytes)} |
| Hearth's estimate (catalog/fit.py at n_ctx {est.n_ctx}) | **{size(est.total_bytes)}**, \
{size(est.gpu_bytes)} of it on the GPU ({parts}): {versus} |
| Model load through ModelManager | {result.load_s:.2f} s |

The app side times `ModelManager.start(...).wait()`: the run's queue, its worker thread,
the stop-string filter and the bookkeeping of token counts, on the same prompt tokens
and greedy settings as the raw side. The estimate's GPU part (weights of the offloaded
layers, their KV cache, the GPU's compute buffer) is what is set against nvidia-smi.
"""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sdist", help="llama-cpp-python sdist to build the CUDA variant from")
    parser.add_argument("--model", help="a GGUF file to measure instead of the default one")
    parser.add_argument("--synthetic", action="store_true", help="the random 1.1B model, Gemma or not")
    parser.add_argument("--weights", choices=("q8_0", "f16"), default="q8_0")
    parser.add_argument("--tokens", type=int, help="greedy reply length (256; 64 with --cpu-smoke)")
    parser.add_argument("--trials", type=int, help="app/raw pairs (5; 2 with --cpu-smoke)")
    parser.add_argument("--n-ctx", type=int, help="context size (2048; 512 with --cpu-smoke)")
    parser.add_argument("--cpu-smoke", action="store_true", help="no GPU: a tiny model, no layers offloaded")
    parser.add_argument("--no-build", action="store_true", help="use this venv's build as it is")
    parser.add_argument("--out", type=Path, help="default: docs/benchmarks.md (none with --cpu-smoke)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse(argv)
    if not args.cpu_smoke and not args.no_build:
        ensure_gpu_build(args.sdist or os.environ.get("HEARTH_LLAMA_SDIST"))
    smoke = args.cpu_smoke
    setup = Setup(
        n_gpu_layers=0 if smoke else -1,
        threads=2 if smoke else min(8, os.cpu_count() or 1),
        n_ctx=args.n_ctx or (TINY.context if smoke else 2048),
        tokens=args.tokens or (64 if smoke else 256),
        trials=args.trials or (2 if smoke else 5),
    )
    with tempfile.TemporaryDirectory() as scratch:
        path = choose_model(args, Path(scratch))
        result = measure(path, setup, device_name(smoke))
    command = ".venv/bin/python bench/gpu.py" + (" --cpu-smoke" if smoke else "")
    section = write_report(result, command)
    out = args.out or (None if smoke else ROOT / "docs" / "benchmarks.md")
    if out is not None:
        update_section(out, HEADING, section)
    print(section)
    return section


if __name__ == "__main__":
    main()
