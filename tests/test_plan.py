"""Load plans: the machine Hearth finds, the layers and context "auto" picks, the plan in
words, and the load settings typed in the Models tab and remembered per model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from catalog import hardware
from catalog.entries import load_catalog
from catalog.fit import shape_for_entry
from catalog.hardware import Gpu, Machine
from catalog.plan import AUTO_CTX_CAP, GPU_MARGIN, fewer, fits, plan_load
from catalog.shape import ModelShape, shape_from_header
from engine.gguf import read_header
from engine.types import LoadOptions
from services.models import plan as plans
from store.db import Store

GB = 10**9
GIB = 1 << 30
AUTO = LoadOptions(n_ctx=None, n_gpu_layers=None)


@pytest.fixture(scope="module")
def mythomax() -> ModelShape:
    shape = shape_for_entry(load_catalog().get("mythomax-l2-13b"))  # 40 layers, 7.87 GB, 4096 trained
    assert shape is not None
    return shape


@pytest.fixture(scope="module")
def tiny(tiny_gguf: Path) -> ModelShape:
    shape = shape_from_header(read_header(tiny_gguf))
    assert shape is not None
    return shape


def machine(ram_gb: float = 64, gpu_gib: float | None = None) -> Machine:
    gpus = () if gpu_gib is None else (Gpu("GPU", int(gpu_gib * GIB), int(gpu_gib * GIB)),)
    return Machine(ram_free=int(ram_gb * GB), ram_total=int(ram_gb * GB), gpus=gpus, cores=4, logical_cores=8)


# -- the machine --------------------------------------------------------------------------------------


def test_nvidia_smi_rows_become_gpus() -> None:
    out = "NVIDIA GeForce RTX 3060, 11902, 12288\nNVIDIA H100 80GB HBM3, 81000, 81559\n"
    gpus = hardware.nvidia_gpus(lambda command: out if command[0] == "nvidia-smi" else None)
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 3060", "NVIDIA H100 80GB HBM3"]
    assert (gpus[0].free, gpus[0].total) == (11902 << 20, 12288 << 20)
    assert hardware.nvidia_gpus(lambda _c: "Some GPU, [N/A], [N/A]\n") == ()
    assert hardware.nvidia_gpus(lambda _c: None) == ()  # no nvidia-smi: no NVIDIA GPU


def test_rocm_smi_vram_becomes_gpus() -> None:
    out = (
        "GPU[0]\t\t: VRAM Total Memory (B): 17163091968\n"
        "GPU[0]\t\t: VRAM Total Used Memory (B): 1205780480\n"
        "GPU[1]\t\t: VRAM Total Memory (B): 8589934592\n"
    )
    gpus = hardware.rocm_gpus(lambda _c: out)
    assert [(g.free, g.total) for g in gpus] == [(17163091968 - 1205780480, 17163091968), (8589934592,) * 2]


def test_the_machine_comes_from_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    class Memory:
        available, total = 6 * GB, 16 * GB

    monkeypatch.setattr(hardware.psutil, "virtual_memory", lambda: Memory())
    found = hardware.discover(lambda _c: None)
    assert (found.ram_free, found.ram_total, found.gpus) == (6 * GB, 16 * GB, ())
    assert found.cores >= 1 and found.logical_cores >= found.cores


def test_unified_memory_is_the_ram() -> None:
    apple = Machine(ram_free=20 * GB, ram_total=32 * GB, unified=True)
    assert apple.has_gpu and apple.gpu_free == 20 * GB


# -- auto: context and layers -----------------------------------------------------------------------------


def test_cpu_only_takes_the_trained_context_up_to_the_cap(tiny: ModelShape, mythomax: ModelShape) -> None:
    plan = plan_load(tiny, AUTO, machine(), offload_supported=False)
    assert (plan.n_ctx, plan.n_gpu_layers, plan.fits) == (tiny.context_length, 0, True)
    assert plan.options.n_ctx == tiny.context_length and plan.options.n_gpu_layers == 0
    long = replace(tiny, context_length=131072)
    assert plan_load(long, AUTO, machine(), offload_supported=False).n_ctx == AUTO_CTX_CAP
    assert plan_load(mythomax, AUTO, machine(), offload_supported=False).n_ctx == 4096


def test_a_short_memory_gets_a_shorter_context(mythomax: ModelShape) -> None:
    roomy = plan_load(mythomax, AUTO, machine(ram_gb=20), offload_supported=False)
    tight = plan_load(mythomax, AUTO, machine(ram_gb=12), offload_supported=False)
    assert roomy.n_ctx == 4096 and roomy.fits
    assert tight.n_ctx < 4096 and tight.fits
    assert tight.estimate.ram_bytes <= 12 * GB * 0.85 < roomy.estimate.ram_bytes


def test_every_layer_on_a_gpu_that_holds_them(mythomax: ModelShape) -> None:
    plan = plan_load(mythomax, AUTO, machine(gpu_gib=24), offload_supported=True)
    assert (plan.n_gpu_layers, plan.n_ctx, plan.fits) == (41, 4096, True)
    assert plan.estimate.flash_attn  # "auto" turns it on with layers on the GPU
    assert plan.estimate.gpu_bytes <= 24 * GIB - GPU_MARGIN


def test_a_small_gpu_gets_some_layers_and_leaves_its_margin(mythomax: ModelShape) -> None:
    plan = plan_load(mythomax, AUTO, machine(gpu_gib=8), offload_supported=True)
    assert 0 < plan.n_gpu_layers < 41 and plan.fits
    assert plan.n_ctx == 4096  # the context is kept; layers move to the CPU
    assert plan.estimate.gpu_bytes <= 8 * GIB - GPU_MARGIN
    one_more = replace(plan.options, n_gpu_layers=plan.n_gpu_layers + 1)
    bigger = plan_load(mythomax, one_more, machine(gpu_gib=8), offload_supported=True)
    assert not fits(bigger.estimate, machine(gpu_gib=8))  # the plan took as many as fit


def test_a_gpu_needs_a_build_that_can_offload(mythomax: ModelShape) -> None:
    plan = plan_load(mythomax, AUTO, machine(gpu_gib=24), offload_supported=False)
    assert plan.n_gpu_layers == 0 and not plan.offload
    asked = plan_load(mythomax, replace(AUTO, n_gpu_layers=20), machine(), offload_supported=False)
    assert asked.n_gpu_layers == 0 and asked.options.n_gpu_layers == 0
    assert any("cannot use a GPU" in note and "20 GPU layers" in note for note in asked.notes)


def test_what_the_user_set_is_kept_even_when_it_does_not_fit(mythomax: ModelShape) -> None:
    options = LoadOptions(n_ctx=16384, n_gpu_layers=-1)
    plan = plan_load(mythomax, options, machine(ram_gb=8, gpu_gib=8), offload_supported=True)
    assert (plan.n_ctx, plan.n_gpu_layers, plan.fits) == (16384, 41, False)
    assert plan.words().endswith("too big for this computer")


def test_a_quantized_v_cache_turns_flash_attention_on(tiny: ModelShape) -> None:
    wide = replace(tiny, head_dim_k=128, head_dim_v=128)
    options = replace(AUTO, flash_attn="off", cache_type_k="q8_0", cache_type_v="q8_0")
    plan = plan_load(wide, options, machine(), offload_supported=False)
    assert plan.estimate.flash_attn and any("flash attention" in note for note in plan.notes)
    f16 = plan_load(wide, AUTO, machine(), offload_supported=False)
    assert plan.estimate.kv_bytes < f16.estimate.kv_bytes


def test_a_quantized_cache_needs_heads_of_whole_blocks(tiny: ModelShape, tiny_gguf: Path) -> None:
    # The tiny model's heads are 16 wide; a q8_0 block holds 32 values, so llama.cpp refuses it.
    options = replace(AUTO, cache_type_k="q8_0", cache_type_v="q4_0")
    plan = plan_load(tiny, options, machine(), offload_supported=False)
    assert (plan.options.cache_type_k, plan.options.cache_type_v) == ("f16", "f16")
    assert any("16 wide" in note and "K cache stays f16" in note for note in plan.notes)
    wide = replace(tiny, head_dim_k=128, head_dim_v=128)
    assert plan_load(wide, options, machine(), offload_supported=False).options.cache_type_k == "q8_0"


def test_unified_memory_counts_everything_against_the_ram(mythomax: ModelShape) -> None:
    apple = Machine(ram_free=12 * GB, ram_total=16 * GB, unified=True)
    plan = plan_load(mythomax, AUTO, apple, offload_supported=True)
    assert plan.n_gpu_layers == 41 and plan.n_ctx < 4096
    assert plan.estimate.total_bytes <= 12 * GB * 0.85


def test_plans_in_words(mythomax: ModelShape, tiny: ModelShape) -> None:
    gpu = plan_load(mythomax, AUTO, machine(ram_gb=20, gpu_gib=12), offload_supported=True)
    assert gpu.words().startswith("41/41 layers on the GPU, 4,096 context, about ")
    assert " GB of 12.9 GB free" in gpu.words()
    cpu = plan_load(tiny, AUTO, machine(ram_gb=20), offload_supported=False)
    needed = f"{cpu.estimate.total_bytes / 10**6:.0f} MB"  # below 0.1 GB, in megabytes
    assert cpu.words() == f"CPU only, 2,048 context, about {needed} of 20.0 GB free RAM"


def test_out_of_memory_retries_move_layers_then_shrink_the_context() -> None:
    steps = [LoadOptions(n_ctx=4096, n_gpu_layers=41)]
    while (smaller := fewer(steps[-1], 41)) is not None:
        steps.append(smaller)
    layers = [s.n_gpu_layers for s in steps]
    assert layers[:5] == [41, 31, 21, 11, 1] and layers[5] == 0
    assert [s.n_ctx for s in steps if s.n_gpu_layers == 0] == [4096, 2048, 1024, 512]
    assert fewer(LoadOptions(n_ctx=4096, n_gpu_layers=-1), 41) == LoadOptions(n_ctx=4096, n_gpu_layers=31)


# -- settings from the form, and remembered per model ---------------------------------------------------


def test_form_values_become_load_options() -> None:
    options = plans.form_options("auto", "all", 4, None, "on", "q8_0", "q4_0", False, True, 1024, 256)
    assert options == LoadOptions(
        n_ctx=None, n_gpu_layers=-1, threads=4, threads_batch=None, flash_attn="on", cache_type_k="q8_0",
        cache_type_v="q4_0", use_mmap=False, use_mlock=True, n_batch=1024, n_ubatch=256,
    )  # fmt: skip
    assert plans.form_options("8192", "12", 2, 4, "auto", "f16", "f16", True, False, 512, 512).n_ctx == 8192
    with pytest.raises(plans.LoadSettingsError, match="Context size must be at least 256"):
        plans.form_options("100", "auto", 2, None, "auto", "f16", "f16", True, False, 512, 512)
    with pytest.raises(plans.LoadSettingsError, match='GPU layers must be "auto", "all" or a number'):
        plans.form_options("auto", "lots", 2, None, "auto", "f16", "f16", True, False, 512, 512)
    with pytest.raises(plans.LoadSettingsError, match="V cache type must be one of"):
        plans.form_options("auto", "auto", 2, None, "auto", "f16", "q2_k", True, False, 512, 512)
    assert [plans.count_text(v, all_word=True) for v in (None, -1, 7)] == ["auto", "all", "7"]


def test_settings_are_remembered_per_model_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    base = LoadOptions(n_ctx=None, n_gpu_layers=None, threads=4)
    first, second = tmp_path / "a.gguf", tmp_path / "b.gguf"
    chosen = replace(base, n_ctx=8192, cache_type_k="q8_0", flash_attn="on", use_mmap=False)
    plans.remember_options(store, first, chosen)
    assert plans.remembered_options(store, first, base) == chosen
    assert plans.remembered_options(store, second, base) == base  # another file keeps the defaults
    store.close()
    reopened = Store(tmp_path / "data")
    assert plans.remembered_options(reopened, first, base) == chosen  # kept across restarts
    reopened.close()


def test_damaged_remembered_settings_are_ignored_one_by_one(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    path = tmp_path / "m.gguf"
    damaged = {"n_ctx": "huge", "threads": 3, "cache_type_v": "q9", "x": 1}
    store.set_setting(plans.SETTINGS_KEY, {str(path): damaged})
    assert plans.remembered_options(store, path, LoadOptions()) == LoadOptions(threads=3)
    store.set_setting(plans.SETTINGS_KEY, ["not", "a", "mapping"])
    assert plans.remembered_options(store, path, LoadOptions()) == LoadOptions()
    store.close()


def test_plan_markdown_for_the_picked_model(tiny_gguf: Path, tmp_path: Path) -> None:
    text = plans.plan_markdown(tiny_gguf, AUTO)
    assert text.startswith("**Plan:** ") and "2,048 context" in text
    assert plans.plan_markdown(None, AUTO) == ""
    assert "cannot plan this file" in plans.plan_markdown(tmp_path / "missing.gguf", AUTO)
