"""bench/gpu.py in pieces: the random Llama it writes, its nvidia-smi readings, the build
step, the report, and the whole script end to end on the CPU (`--cpu-smoke`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader

from bench import gpu
from bench.gpu_model import TINY, TINYLLAMA_1B, LlamaShape, vocabulary, write_llama
from catalog.fit import estimate_for_model
from engine.gguf import model_info

# -- the random Llama ------------------------------------------------------------------------------


def test_the_default_shape_is_a_realistic_one_billion() -> None:
    assert 1.0e9 < TINYLLAMA_1B.parameters() < 1.2e9
    assert TINYLLAMA_1B.kv_width == 256  # 4 KV heads of 64


@pytest.mark.parametrize(
    ("weights", "kind"), [("q8_0", GGMLQuantizationType.Q8_0), ("f16", GGMLQuantizationType.F16)]
)
def test_the_writer_produces_the_shape_it_promises(
    tmp_path: Path, weights: str, kind: GGMLQuantizationType
) -> None:
    path = write_llama(tmp_path / f"m-{weights}.gguf", TINY, weights)
    reader = GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    assert sum(int(t.n_elements) for t in reader.tensors) == TINY.parameters()
    assert tensors["blk.1.ffn_down.weight"].tensor_type == kind
    assert [int(n) for n in tensors["blk.0.attn_k.weight"].shape] == [TINY.n_embd, TINY.kv_width]
    assert [int(n) for n in tensors["token_embd.weight"].shape] == [TINY.n_embd, TINY.n_vocab]
    assert tensors["output_norm.weight"].tensor_type == GGMLQuantizationType.F32
    info = model_info(path)
    assert (info.architecture, info.n_layers, info.n_head_kv, info.quant) == ("llama", 2, 2, weights.upper())


def test_q8_0_blocks_carry_a_small_scale_and_spread_values(tmp_path: Path) -> None:
    reader = GGUFReader(write_llama(tmp_path / "m.gguf", TINY, "q8_0"))
    raw = next(t for t in reader.tensors if t.name == "blk.0.attn_q.weight").data
    blocks = np.asarray(raw).reshape(-1, 34)
    scales = blocks[:, :2].copy().view(np.float16).ravel()
    assert np.all(scales == scales[0]) and 0 < float(scales[0]) < 0.001
    assert len(np.unique(blocks[:, 2:])) > 200


def test_the_vocabulary_has_the_bytes_spm_needs() -> None:
    tokens, scores, types = vocabulary(300)
    assert tokens[:3] == ["<unk>", "<s>", "</s>"] and tokens[3] == "<0x00>" and tokens[258] == "<0xFF>"
    assert len(tokens) == len(scores) == len(types) == 300
    with pytest.raises(ValueError, match="at least 259"):
        vocabulary(100)


def test_q8_0_refuses_rows_that_are_not_whole_blocks(tmp_path: Path) -> None:
    odd = LlamaShape(n_layer=1, n_embd=48, n_head=4, n_head_kv=4, n_ff=96, n_vocab=300)
    with pytest.raises(ValueError, match="multiple of 32"):
        write_llama(tmp_path / "odd.gguf", odd, "q8_0")
    write_llama(tmp_path / "odd.gguf", odd, "f16")  # f16 has no blocks


# -- the machine and the build ---------------------------------------------------------------------


def fake_nvidia_smi(folder: Path, monkeypatch: pytest.MonkeyPatch, used: str = "1200\n34000\n") -> None:
    folder.mkdir(exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(
        '#!/bin/sh\ncase "$1" in\n'
        f"  --query-gpu=memory.used) printf '{used}' ;;\n"
        "  --query-gpu=name) echo 'NVIDIA H100 80GB HBM3' ;;\nesac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")


def test_gpu_memory_is_summed_over_gpus_in_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(tmp_path / "bin", monkeypatch)
    assert gpu.gpu_memory_used() == (1200 + 34000) << 20
    assert gpu.device_name(cpu_only=False) == "NVIDIA H100 80GB HBM3"


def test_without_nvidia_smi_there_is_no_gpu_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert gpu.gpu_memory_used() is None
    assert "CPU" in gpu.device_name(cpu_only=False)
    with pytest.raises(SystemExit, match="--cpu-smoke"):
        gpu.ensure_gpu_build(None)


@pytest.fixture(autouse=True)
def in_the_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build step checks that it runs in the repository's .venv (these tests may not)."""
    monkeypatch.setattr(gpu.sys, "prefix", str(gpu.ROOT / ".venv"))


def test_a_build_that_offloads_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "nvidia_smi", lambda *q: ["NVIDIA H100 80GB HBM3"])
    answers = {"offload": 0, "installed": 0}
    monkeypatch.setattr(
        gpu, "accelerator", lambda c: subprocess.CompletedProcess([], answers[c], "0.3.36 cuda")
    )
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("nothing should be built"))
    gpu.ensure_gpu_build(None)


def test_a_cpu_build_is_rebuilt_for_cuda_from_the_sdist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "nvidia_smi", lambda *q: ["NVIDIA H100 80GB HBM3"])
    offloads = iter([1, 0])
    monkeypatch.setattr(gpu, "accelerator", lambda c: subprocess.CompletedProcess([], next(offloads), ""))
    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(subprocess, "run", lambda argv, env, check: calls.append((argv, env)))
    gpu.ensure_gpu_build("carried/llama_cpp_python-0.3.36.tar.gz")
    [(argv, env)] = calls
    assert argv[-1].endswith("scripts/install_llama.sh")
    assert env["HEARTH_GPU"] == "cuda"
    assert env["HEARTH_LLAMA_SDIST"] == str(Path("carried/llama_cpp_python-0.3.36.tar.gz").resolve())


def test_a_build_that_still_cannot_offload_stops_the_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "nvidia_smi", lambda *q: ["NVIDIA H100 80GB HBM3"])
    monkeypatch.setattr(gpu, "accelerator", lambda c: subprocess.CompletedProcess([], 1, ""))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: None)
    with pytest.raises(SystemExit, match="llama-build.log"):
        gpu.ensure_gpu_build(None)


# -- the report and the whole script ---------------------------------------------------------------


def test_the_report_sets_the_estimate_against_the_gpu_allocation(tmp_path: Path) -> None:
    info = model_info(write_llama(tmp_path / "m.gguf", TINY, "q8_0"))
    estimate = estimate_for_model(info, 512)
    result = gpu.Result(
        device="NVIDIA H100 80GB HBM3", build="0.3.36 cuda", info=info,
        setup=gpu.Setup(n_gpu_layers=-1, threads=8, n_ctx=512, tokens=256, trials=2),
        load_s=0.5, gpu_bytes=estimate.total_bytes // 2, rss_bytes=300_000_000, estimate=estimate,
        app=[gpu.Sample(1.0, 256), gpu.Sample(1.0, 256)], raw=[gpu.Sample(0.5, 256), gpu.Sample(1.0, 256)],
    )  # fmt: skip
    text = gpu.write_report(result, ".venv/bin/python bench/gpu.py")
    assert text.startswith(gpu.HEADING)
    assert "GPU layers: all" in text and "llama-cpp-python 0.3.36 cuda" in text
    assert "**0.750** (256.0 vs 384.0 tokens/s, 256-token replies)" in text
    assert "on the GPU (nvidia-smi, CUDA context included); host RSS grew 0.30 GB" in text
    assert "2.00 × the GPU allocation" in text


def test_the_cpu_smoke_runs_end_to_end_and_writes_its_section(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n## Core (issue 2)\n\nkept\n")
    section = gpu.main(["--cpu-smoke", "--tokens", "8", "--trials", "1", "--out", str(out)])
    assert "GPU layers: 0" in section and "no GPU memory (no nvidia-smi)" in section
    text = out.read_text()
    assert "## Core (issue 2)\n\nkept" in text and gpu.HEADING in text


def test_the_build_step_wants_the_repositorys_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "nvidia_smi", lambda *q: ["NVIDIA H100 80GB HBM3"])
    monkeypatch.setattr(gpu.sys, "prefix", "/usr")
    with pytest.raises(SystemExit, match=".venv/bin/python"):
        gpu.ensure_gpu_build(None)
