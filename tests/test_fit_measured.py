"""The memory estimate against what llama.cpp itself allocates.

Each case loads a model with llama.cpp and compares the buffers its log reports (model,
KV cache, compute and output) with `catalog.fit.estimate_memory` for the same file and
settings: every part and the total must be within 5% or 64 MiB, whichever is larger.
The shapes are chosen so that the parts are big enough for that to mean something: wide
heads at long contexts make KV caches and attention scores of 64 to 256 MiB.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fit import PARTS, Comparison, compare, options_for, tolerance
from bench.gpu_model import LlamaShape, write_llama
from catalog.bundled import bundled_model_path
from catalog.shape import shape_from_header
from engine.gguf import read_header
from engine.llama import LlamaCppBackend
from engine.resources import out_of_memory, parse_buffer_sizes
from engine.types import LoadOptions
from tiny_model import write_tiny_llama

MIB = 1 << 20
SHAPES = {
    "gqa-hd128-q8_0": (LlamaShape(8, 256, 8, 2, 512, 300, context=8192, head_dim=128), "q8_0"),
    "mha-hd128-f16": (LlamaShape(4, 512, 8, 8, 1024, 300, context=8192, head_dim=128), "f16"),
    "gqa8-8k-vocab-q4_0": (LlamaShape(4, 1024, 16, 2, 2816, 8000, context=8192), "q4_0"),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fit-models")
    written = {
        name: write_llama(folder / f"{name}.gguf", shape, weights)
        for name, (shape, weights) in SHAPES.items()
    }
    written["tiny"] = write_tiny_llama(folder / "tiny.gguf")
    return written


def check(result: Comparison) -> None:
    assert result.measured["model"] > 0 and result.measured["compute"] > 0  # the log was read
    for part in PARTS:
        error = result.predicted[part] - result.measured[part]
        assert abs(error) <= tolerance(result.measured[part]), (
            f"{result.label} {result.options}: {part} estimated {result.predicted[part] / MIB:.1f} MiB, "
            f"llama.cpp {result.measured[part] / MIB:.1f} MiB"
        )


@pytest.mark.parametrize(
    ("model", "n_ctx", "flash", "cache"),
    [
        ("tiny", 512, "off", "f16"),
        ("tiny", 2048, "on", "f16"),
        ("gqa-hd128-q8_0", 512, "off", "f16"),
        ("gqa-hd128-q8_0", 8192, "off", "f16"),
        ("gqa-hd128-q8_0", 8192, "on", "f16"),
        ("gqa-hd128-q8_0", 4096, "on", "q4_0"),
        ("mha-hd128-f16", 8192, "off", "f16"),
        ("mha-hd128-f16", 8192, "on", "q8_0"),
        ("gqa8-8k-vocab-q4_0", 2048, "off", "f16"),
        ("gqa8-8k-vocab-q4_0", 8192, "on", "f16"),
    ],
)
def test_estimate_matches_llama_cpp(
    models: dict[str, Path], model: str, n_ctx: int, flash: str, cache: str
) -> None:
    check(compare(models[model], options_for(n_ctx, flash, cache), model))


def test_the_parts_are_big_enough_to_test(models: dict[str, Path]) -> None:
    # Past the 64 MiB floor, a wrong KV or attention formula cannot hide in the tolerance.
    result = compare(models["mha-hd128-f16"], options_for(8192, "off", "f16"))
    assert result.measured["kv"] == 128 * MIB  # 4 layers × 8 heads × (128 + 128) × 2 bytes × 8192
    assert result.measured["compute"] > 128 * MIB  # 8 heads of 8192 × 512 float scores
    check(result)


def test_without_mmap_the_weights_are_read_once(models: dict[str, Path]) -> None:
    mapped = compare(models["gqa8-8k-vocab-q4_0"], options_for(512, "off", "f16"))
    read = compare(models["gqa8-8k-vocab-q4_0"], LoadOptions(n_ctx=512, threads=1, use_mmap=False))
    check(read)
    assert read.measured["model"] <= mapped.measured["model"]


@pytest.mark.gemma
@pytest.mark.parametrize(
    ("n_ctx", "flash", "cache"),
    [
        (512, "off", "f16"),
        (2048, "on", "f16"),
        (8192, "off", "f16"),
        (8192, "on", "q8_0"),
        (4096, "on", "q4_0"),
    ],
)
def test_estimate_matches_llama_cpp_for_the_bundled_model(n_ctx: int, flash: str, cache: str) -> None:
    check(compare(bundled_model_path(), options_for(n_ctx, flash, cache), "gemma"))


@pytest.mark.gemma
def test_gemma_shape_from_its_header() -> None:
    shape = shape_from_header(read_header(bundled_model_path()))
    assert shape is not None
    assert (shape.n_layer, shape.n_head, shape.kv_heads[0]) == (18, 4, 1)
    assert (shape.head_dim_k, shape.head_dim_v) == (256, 256)  # not 640 / 4
    assert shape.output_tied and shape.sliding_window == 512 and shape.n_vocab == 262_144


def test_the_backend_reports_llama_cpp_buffers(models: dict[str, Path]) -> None:
    backend = LlamaCppBackend(models["tiny"], LoadOptions(n_ctx=1024, threads=1))
    try:
        buffers = backend.buffers
        assert buffers.size("kv") == 2 * 1024 * 2 * 16 * 2 * 2  # layers × cells × kv heads × 16 × (K+V) × f16
        assert buffers.size("model") > 0 and buffers.size(gpu=True) == 0  # a CPU build
    finally:
        backend.close()


def test_log_lines_are_read_by_part_and_place() -> None:
    log = (
        "load_tensors:   CPU_Mapped model buffer size =   235.16 MiB\n"
        "load_tensors:        CUDA0 model buffer size =  1000.00 MiB\n"
        "llama_kv_cache:      CUDA0 KV buffer size =    12.00 MiB\n"
        "llama_context:  CUDA_Host  output buffer size =     1.00 MiB\n"
        "sched_reserve:      CUDA0 compute buffer size =   514.50 MiB\n"
        "sched_reserve:  CUDA_Host compute buffer size =    10.00 MiB\n"
        "~llama_context:        CPU compute buffer size is 514.5020 MiB, matches expectation\n"
    )
    sizes = parse_buffer_sizes(log)
    assert sizes.size("model", gpu=True) == 1000 * MIB and sizes.size("model", gpu=False) == round(
        235.16 * MIB
    )
    assert sizes.size("compute") == round(524.5 * MIB)  # the closing summary is not a second buffer
    assert sizes.size(gpu=False) == round((235.16 + 1 + 10) * MIB)
    assert not out_of_memory(log)
    assert out_of_memory("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000 MiB: cudaMalloc failed")
