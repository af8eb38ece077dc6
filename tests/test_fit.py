"""Memory estimates and the fit verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.entries import load_catalog
from catalog.fit import (
    KVShape,
    Verdict,
    available_memory,
    check_fit,
    compute_overhead,
    estimate_for_entry,
    estimate_for_model,
)
from engine.gguf_meta import model_info
from engine.types import ModelInfo
from tiny_model import CONTEXT, N_EMBD, N_HEAD, N_HEAD_KV, N_LAYER

GB = 10**9
MIB = 1 << 20


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_kv_cache_matches_the_published_llama2_figures(catalog) -> None:
    # Llama-2-13B: 0.78 MiB per token, about 3.1 GiB at 4096; Llama-2-7B: 0.5 MiB, 2 GiB.
    l13 = KVShape.from_entry(catalog.get("mythomax-l2-13b"))
    assert l13.bytes_per_token() == 800 * 1024
    assert l13.bytes_per_token() * 4096 == 3200 * MIB
    assert KVShape.from_entry(catalog.get("zarablend-l2-7b")).bytes_per_token() * 4096 == 2048 * MIB
    # 70B uses grouped-query attention: 8 KV heads of 64 make its cache smaller than 13B's.
    assert KVShape.from_entry(catalog.get("airoboros-l2-70b")).bytes_per_token() == 320 * 1024


def test_catalog_estimate_adds_file_kv_and_overhead(catalog) -> None:
    estimate = estimate_for_entry(catalog.get("mythomax-l2-13b"))
    assert estimate.n_ctx == 4096 and not estimate.rough
    assert estimate.weights_bytes == int(7.87 * GB)
    assert estimate.kv_bytes == 3200 * MIB
    assert (
        estimate.overhead_bytes
        == compute_overhead(estimate.weights_bytes)
        == 100 * MIB + int(7.87 * GB) // 20
    )
    assert estimate.total_bytes == estimate.weights_bytes + estimate.kv_bytes + estimate.overhead_bytes
    assert round(estimate.total_bytes / GB, 1) == 11.7


def test_context_defaults_to_the_models_own_when_smaller(catalog) -> None:
    # Spring Dragon is a LLaMA-1 13B with a 2048-token context.
    assert estimate_for_entry(catalog.get("spring-dragon-13b")).n_ctx == 2048
    bigger = estimate_for_entry(catalog.get("mythomax-l2-13b"), n_ctx=8192)
    assert bigger.kv_bytes == 2 * 3200 * MIB


def test_overhead_is_capped() -> None:
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


def test_estimate_from_a_real_gguf_header(tiny_gguf: Path) -> None:
    info = model_info(tiny_gguf)
    estimate = estimate_for_model(info, n_ctx=1024)
    expected_kv = 2 * N_LAYER * 1024 * N_HEAD_KV * (N_EMBD // N_HEAD) * 2
    assert estimate.kv_bytes == expected_kv
    assert estimate.weights_bytes == tiny_gguf.stat().st_size
    assert not estimate.rough and "metadata" in estimate.basis
    assert estimate_for_model(info).n_ctx == min(4096, CONTEXT)


def test_model_without_shape_facts_is_rough() -> None:
    info = ModelInfo(
        path="x.gguf", name="x", architecture="mystery", file_size=4 * GB, quant="Q4_K_M", context_length=0
    )
    estimate = estimate_for_model(info)
    assert estimate.rough and estimate.n_ctx == 4096


@pytest.mark.parametrize(
    ("available_gb", "verdict"),
    [(21.3, Verdict.FITS), (12.5, Verdict.TIGHT), (11.0, Verdict.TOO_BIG)],
)
def test_verdicts(catalog, available_gb: float, verdict: Verdict) -> None:
    estimate = estimate_for_entry(catalog.get("mythomax-l2-13b"))  # ~11.7 GB
    result = check_fit(estimate, available_bytes=int(available_gb * GB))
    assert result.verdict is verdict


def test_badge_reads_in_words(catalog) -> None:
    result = check_fit(estimate_for_entry(catalog.get("mythomax-l2-13b")), available_bytes=int(21.3 * GB))
    assert result.badge == "~11.7 GB needed of 21.3 GB free — fits"


def test_available_memory_reads_memavailable(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:   20800000 kB\n")
    assert available_memory(meminfo) == 20800000 * 1024
    # Without the file the free physical pages stand in; on Linux that is a positive number.
    assert available_memory(tmp_path / "missing") > 0
