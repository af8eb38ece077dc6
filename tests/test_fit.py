"""Memory estimates, part by part, and the fit verdict (arithmetic only: no model loads).

`test_fit_measured.py` holds the same estimates against what llama.cpp allocates.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.gpu_model import LlamaShape, write_llama
from catalog.entries import load_catalog
from catalog.fit import (
    KVShape,
    Verdict,
    available_memory,
    check_fit,
    compute_bytes,
    compute_overhead,
    context_cells,
    estimate_for_entry,
    estimate_for_model,
    estimate_memory,
    shape_for_entry,
)
from catalog.shape import ModelShape, Weight, row_bytes, shape_from_header
from engine.gguf import model_info, read_header
from engine.types import LoadOptions, ModelInfo
from tiny_model import CONTEXT, N_EMBD, N_HEAD, N_HEAD_KV, N_LAYER

GB = 10**9
MIB = 1 << 20


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def tiny_shape(tiny_gguf: Path) -> ModelShape:
    shape = shape_from_header(read_header(tiny_gguf))
    assert shape is not None
    return shape


def test_kv_cache_matches_the_published_llama2_figures(catalog) -> None:
    # Llama-2-13B: 0.78 MiB per token, about 3.1 GiB at 4096; Llama-2-7B: 0.5 MiB, 2 GiB.
    l13 = KVShape.from_entry(catalog.get("mythomax-l2-13b"))
    assert l13.bytes_per_token() == 800 * 1024
    assert l13.bytes_per_token() * 4096 == 3200 * MIB
    assert KVShape.from_entry(catalog.get("zarablend-l2-7b")).bytes_per_token() * 4096 == 2048 * MIB
    # 70B uses grouped-query attention: 8 KV heads of 64 make its cache smaller than 13B's.
    assert KVShape.from_entry(catalog.get("airoboros-l2-70b")).bytes_per_token() == 320 * 1024
    shape = shape_for_entry(catalog.get("mythomax-l2-13b"))
    assert shape is not None and shape.kv_bytes_per_token() == 800 * 1024


def test_catalog_estimate_adds_file_kv_and_compute(catalog) -> None:
    estimate = estimate_for_entry(catalog.get("mythomax-l2-13b"))
    assert estimate.n_ctx == 4096 and not estimate.rough
    assert estimate.weights_bytes == int(7.87 * GB)  # the file, all of it in RAM on the CPU
    assert estimate.kv_bytes == 3200 * MIB
    # Without flash attention the attention scores of a 512-token batch over 4096 cells
    # (40 heads of floats) are the biggest step: 320 MiB, plus the mask and the rest.
    assert 320 * MIB < estimate.overhead_bytes < 400 * MIB
    assert estimate.total_bytes == estimate.weights_bytes + estimate.kv_bytes + estimate.overhead_bytes
    assert estimate.ram_bytes == estimate.total_bytes and estimate.gpu_bytes == 0
    assert round(estimate.total_bytes / GB, 1) == 11.6


def test_context_defaults_to_the_models_own_when_smaller(catalog) -> None:
    # Spring Dragon is a LLaMA-1 13B with a 2048-token context.
    assert estimate_for_entry(catalog.get("spring-dragon-13b")).n_ctx == 2048
    bigger = estimate_for_entry(catalog.get("mythomax-l2-13b"), n_ctx=8192)
    assert bigger.kv_bytes == 2 * 3200 * MIB


def test_llama_cpp_rounds_the_context_up_to_256_cells() -> None:
    assert [context_cells(n) for n in (1, 256, 257, 4000)] == [256, 256, 512, 4096]


def test_overhead_without_a_shape_is_capped() -> None:
    assert compute_overhead(0) == 100 * MIB
    assert compute_overhead(40 * GB) == 512 * MIB


def test_other_quants_change_the_weights(catalog) -> None:
    entry = catalog.get("nous-hermes-l2-7b")
    assert estimate_for_entry(entry, "Q8_0").weights_bytes == int(7.16 * GB)
    guessed = estimate_for_entry(entry, "IQ2_XXS")  # no such file: guessed from the parameter count
    assert guessed.rough and "guessed" in guessed.basis


def test_unknown_shape_gives_a_labelled_rough_estimate(catalog) -> None:
    rwkv = catalog.get("rwkv-4-raven-7b")
    estimate = estimate_for_entry(rwkv)
    assert estimate.rough and estimate.basis.startswith("rough guess")
    assert estimate.kv_bytes > 0 and estimate.weights_bytes > 0
    result = check_fit(estimate, available_bytes=100 * GB)
    assert "(rough guess)" in result.badge


def test_shape_from_a_real_gguf_header(tiny_gguf: Path, tiny_shape: ModelShape) -> None:
    header = read_header(tiny_gguf)
    assert (tiny_shape.n_layer, tiny_shape.n_embd, tiny_shape.n_head) == (N_LAYER, N_EMBD, N_HEAD)
    assert tiny_shape.kv_heads == (N_HEAD_KV,) * N_LAYER
    assert tiny_shape.head_dim_k == tiny_shape.head_dim_v == N_EMBD // N_HEAD
    assert tiny_shape.n_vocab == 263 and tiny_shape.context_length == CONTEXT
    assert tiny_shape.file_bytes == sum(t.n_bytes for t in header.tensors)
    assert sum(tiny_shape.layer_bytes) == sum(t.n_bytes for t in header.tensors if t.name.startswith("blk."))
    assert not tiny_shape.output_tied  # the tiny model has its own output matrix


def test_head_width_comes_from_key_length_when_the_file_gives_it(tmp_path: Path) -> None:
    # Gemma 3's heads are 256 wide though n_embd / n_head is 160: the file says so.
    shape = LlamaShape(n_layer=2, n_embd=64, n_head=4, n_head_kv=1, n_ff=128, n_vocab=300, head_dim=256)
    parsed = shape_from_header(read_header(write_llama(tmp_path / "wide.gguf", shape, "f16")))
    assert parsed is not None and (parsed.head_dim_k, parsed.head_dim_v) == (256, 256)
    assert parsed.kv_bytes_per_token() == 2 * 1 * (256 + 256) * 2  # layers × kv heads × (K + V) × f16


@pytest.mark.parametrize(("cache", "row"), [("f16", 128), ("q8_0", 68), ("q4_0", 36)])
def test_kv_rows_per_cache_type(cache: str, row: int) -> None:
    # 64 values: f16 is 2 bytes each; q8_0 is 34 bytes per 32; q4_0 is 18 bytes per 32.
    assert row_bytes(cache, 64) == row


def test_estimate_from_a_real_gguf_header(tiny_gguf: Path, tiny_shape: ModelShape) -> None:
    info = model_info(tiny_gguf)
    estimate = estimate_for_model(info, n_ctx=1024, shape=tiny_shape)
    expected_kv = 2 * N_LAYER * 1024 * N_HEAD_KV * (N_EMBD // N_HEAD) * 2
    assert estimate.kv_bytes == expected_kv
    assert estimate.weights_bytes == tiny_shape.file_bytes
    assert not estimate.rough and "tensors" in estimate.basis
    q8 = estimate_memory(tiny_shape, LoadOptions(cache_type_k="q8_0", cache_type_v="q8_0"), n_ctx=1024)
    assert q8.kv_bytes == expected_kv * 34 // 64  # a row of 2 heads × 16 is one block of 32
    # Without the tensor table, the metadata's head counts still give the KV cache.
    assert estimate_for_model(info, n_ctx=1024).kv_bytes == expected_kv
    assert estimate_for_model(info).n_ctx == min(4096, CONTEXT)


def test_model_without_shape_facts_is_rough() -> None:
    info = ModelInfo(
        path="x.gguf", name="x", architecture="mystery", file_size=4 * GB, quant="Q4_K_M", context_length=0
    )
    estimate = estimate_for_model(info)
    assert estimate.rough and estimate.n_ctx == 4096


def test_compute_is_the_biggest_step_of_a_batch(tiny_shape: ModelShape) -> None:
    wide = replace(tiny_shape, n_vocab=262_144)  # a Gemma-sized vocabulary: the logits win
    assert compute_bytes(wide, 4096, 512, flash_attn=False) >= 262_144 * 512 * 4
    long = replace(tiny_shape, n_head=32)  # many heads over a long context: the scores win
    scores = 8192 * 512 * 32 * 4
    assert compute_bytes(long, 8192, 512, flash_attn=False) >= scores
    assert compute_bytes(long, 8192, 512, flash_attn=True) < scores // 8  # flash attention keeps none
    assert compute_bytes(long, 8192, 256, flash_attn=False) < compute_bytes(long, 8192, 512, flash_attn=False)


def test_the_micro_batch_is_capped_by_the_batch_and_the_context(tiny_shape: ModelShape) -> None:
    def compute(**options: int) -> int:
        return estimate_memory(tiny_shape, LoadOptions(**options), n_ctx=4096).compute.total  # type: ignore[arg-type]

    assert compute(n_batch=256) < compute() and compute(n_ubatch=128) < compute()
    assert compute(n_batch=256, n_ubatch=512) == compute(n_ubatch=256)


def test_gpu_layers_go_from_the_last_one_down(tiny_shape: ModelShape) -> None:
    options = LoadOptions()
    cpu = estimate_memory(tiny_shape, options, n_ctx=1024)
    one = estimate_memory(tiny_shape, options, n_ctx=1024, n_gpu_layers=1)
    assert one.n_gpu_layers == 1 and one.n_layers == N_LAYER + 1
    assert one.weights.gpu == tiny_shape.layer_bytes[-1]
    assert one.kv.gpu == cpu.kv_bytes // N_LAYER
    assert one.weights.total == cpu.weights.total  # moved, not added
    every = estimate_memory(tiny_shape, options, n_ctx=1024, n_gpu_layers=-1)
    assert every.n_gpu_layers == N_LAYER + 1 and every.kv.host == 0
    assert every.weights.gpu == sum(tiny_shape.layer_bytes) + tiny_shape.output_bytes
    assert every.weights.host == tiny_shape.input_bytes  # the embeddings stay on the CPU
    assert every.flash_attn and not cpu.flash_attn  # "auto": on with layers on a GPU
    assert every.compute.gpu > every.compute.host > 0
    assert estimate_memory(tiny_shape, options, n_ctx=1024, n_gpu_layers=99).n_gpu_layers == N_LAYER + 1


def test_a_tied_output_layer_gets_a_copy_of_the_embeddings_on_the_gpu(tiny_shape: ModelShape) -> None:
    # A model without its own output matrix (Gemma) multiplies by the embeddings; offloaded,
    # the GPU gets a copy of them while the CPU keeps its own for the lookups.
    embeddings = tiny_shape.input_bytes
    tied = replace(
        tiny_shape,
        output_tied=True,
        output_bytes=embeddings,
        weights=tuple(w for w in tiny_shape.weights if w.name != "output.weight"),
    )
    cpu = estimate_memory(tied, LoadOptions(), n_ctx=512)
    every = estimate_memory(tied, LoadOptions(), n_ctx=512, n_gpu_layers=-1)
    assert every.weights.host == embeddings
    assert every.weights.gpu == sum(tied.layer_bytes) + embeddings
    assert every.weights.total > cpu.weights.total  # the copy is extra memory


def test_q4_0_matrices_are_the_ones_the_cpu_rearranges(tmp_path: Path) -> None:
    shape = LlamaShape(n_layer=2, n_embd=256, n_head=4, n_head_kv=4, n_ff=512, n_vocab=300)
    parsed = shape_from_header(read_header(write_llama(tmp_path / "q4.gguf", shape, "q4_0")))
    assert parsed is not None
    repackable = {w.name for w in parsed.weights if w.repackable}
    # Every matrix of a layer; not the embeddings (looked up by row), nor the 300-row output.
    assert repackable == {name for name, _, _ in shape.matrices() if name.startswith("blk.")}
    f16 = shape_from_header(read_header(write_llama(tmp_path / "f16.gguf", shape, "f16")))
    assert f16 is not None and not any(w.repackable for w in f16.weights)


def test_repacked_weights_are_counted_where_llama_cpp_counts_them(tiny_shape: ModelShape) -> None:
    # A rearranged matrix between two plain ones: the file stays mapped across all three,
    # and llama.cpp reports that mapping beside the rearranged copy.
    plain, packed = Weight("blk.0.norm", 0, 0, 100, False), Weight("blk.0.matrix", 0, 100, 1000, True)
    last = Weight("output_norm.weight", None, 1100, 100, False)
    shape = replace(tiny_shape, weights=(plain, packed, last))
    mapped = estimate_memory(shape, LoadOptions(), n_ctx=512, repack=True)
    assert mapped.weights.total == 1200  # each weight lives once
    assert mapped.reported()["model"] == 1200 + 1000  # the whole mapping, and the copy
    assert estimate_memory(shape, LoadOptions(), n_ctx=512, repack=False).reported()["model"] == 1200
    read = estimate_memory(shape, LoadOptions(use_mmap=False), n_ctx=512, repack=True)
    assert read.reported()["model"] == 1200  # read into memory: nothing mapped beside the copy


@pytest.mark.parametrize(
    ("available_gb", "verdict"),
    [(21.3, Verdict.FITS), (12.5, Verdict.TIGHT), (11.0, Verdict.TOO_BIG)],
)
def test_verdicts(catalog, available_gb: float, verdict: Verdict) -> None:
    estimate = estimate_for_entry(catalog.get("mythomax-l2-13b"))  # ~11.6 GB
    result = check_fit(estimate, available_bytes=int(available_gb * GB))
    assert result.verdict is verdict


def test_badge_reads_in_words(catalog) -> None:
    result = check_fit(estimate_for_entry(catalog.get("mythomax-l2-13b")), available_bytes=int(21.3 * GB))
    assert result.badge == "~11.6 GB needed of 21.3 GB free — fits"


def test_available_memory_comes_from_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    import catalog.fit as fit

    class Memory:
        available = 20_800_000 * 1024

    monkeypatch.setattr(fit.psutil, "virtual_memory", lambda: Memory())
    assert available_memory() == 20_800_000 * 1024


def test_no_code_reads_proc_meminfo() -> None:
    root = Path(__file__).resolve().parent.parent
    readers = [
        p.relative_to(root).as_posix()
        for folder in ("app.py", "api", "services", "engine", "catalog", "store", "presets", "ui", "bench")
        for p in ([root / folder] if folder.endswith(".py") else (root / folder).rglob("*.py"))
        if "/proc/meminfo" in p.read_text() or "SC_AVPHYS_PAGES" in p.read_text()
    ]
    assert readers == []
