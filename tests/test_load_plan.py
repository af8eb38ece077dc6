"""Loading with a plan: "auto" decided for this machine, the performance settings passed
to llama.cpp, retries when memory runs out, and the warning for a build without a GPU."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.gpu_model import LlamaShape, write_llama
from catalog.hardware import Gpu, Machine
from engine.errors import ModelMemoryError
from engine.fake import FakeBackend
from engine.gguf import model_info
from engine.llama import LlamaCppBackend
from engine.resources import physical_cores
from engine.types import LoadOptions
from services.context import AppContext, Settings, create_context
from services.models import plan as plans

MIB = 1 << 20
AUTO = LoadOptions(n_ctx=None, n_gpu_layers=None, threads=1)
ROOMY = Machine(ram_free=64 * 10**9, ram_total=64 * 10**9)
WIDE = LlamaShape(
    n_layer=2, n_embd=256, n_head=4, n_head_kv=2, n_ff=512, n_vocab=300, context=4096, head_dim=128
)


@pytest.fixture
def wide_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model with 128-wide heads, which quantized KV caches can hold."""
    return write_llama(tmp_path_factory.mktemp("wide") / "wide.gguf", WIDE, "q8_0")


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[LoadOptions]:
    monkeypatch.setattr(plans, "machine", lambda: ROOMY)
    return []


def context(tmp_path: Path, factory, **settings) -> Iterator[AppContext]:  # type: ignore[no-untyped-def]
    ctx = create_context(Settings(data_dir=tmp_path / "data", load_model=False, **settings), factory=factory)
    yield ctx
    ctx.models.unload()
    ctx.store.close()


def test_auto_is_planned_before_the_load(
    tmp_path: Path, tiny_gguf: Path, attempts: list[LoadOptions]
) -> None:
    def factory(path: Path, options: LoadOptions) -> FakeBackend:
        attempts.append(options)
        return FakeBackend(options.n_ctx or 0, info=model_info(path))

    for ctx in context(tmp_path, factory):
        outcome = ctx.load_planned(tiny_gguf, AUTO)
        assert attempts == [outcome.options]
        assert (outcome.options.n_ctx, outcome.options.n_gpu_layers) == (2048, 0)  # the trained context
        assert outcome.plan is not None and outcome.plan.words().startswith("CPU only, 2,048 context")
        assert outcome.notes == ()


def test_out_of_memory_retries_smaller_and_says_what_changed(
    tmp_path: Path, tiny_gguf: Path, attempts: list[LoadOptions], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        plans, "machine", lambda: Machine(64 * 10**9, 64 * 10**9, gpus=(Gpu("GPU", 8 << 30, 8 << 30),))
    )
    monkeypatch.setattr(plans, "offload_supported", lambda: True)

    def factory(path: Path, options: LoadOptions) -> FakeBackend:
        attempts.append(options)
        if len(attempts) < 5:
            raise ModelMemoryError("tiny-llama.gguf did not fit in memory.")
        return FakeBackend(options.n_ctx or 0, info=model_info(path))

    for ctx in context(tmp_path, factory):
        outcome = ctx.load_planned(tiny_gguf, AUTO)
        # Every layer (2 blocks and the output) planned on the GPU; then one fewer at a
        # time, then half the context.
        assert [(a.n_gpu_layers, a.n_ctx) for a in attempts] == [
            (3, 2048), (2, 2048), (1, 2048), (0, 2048), (0, 1024)
        ]  # fmt: skip
        assert outcome.options == attempts[-1] and ctx.models.loaded
        assert outcome.notes == (
            "llama.cpp ran out of memory, so Hearth tried again with 2 GPU layers instead of 3.",
            "llama.cpp ran out of memory, so Hearth tried again with 1 GPU layers instead of 2.",
            "llama.cpp ran out of memory, so Hearth tried again with 0 GPU layers instead of 1.",
            "llama.cpp ran out of memory, so Hearth tried again with a 1,024-token context instead of 2,048.",
        )


def test_a_load_that_never_fits_fails_and_keeps_the_previous_model(
    tmp_path: Path, tiny_gguf: Path, attempts: list[LoadOptions]
) -> None:
    def factory(path: Path, options: LoadOptions) -> FakeBackend:
        attempts.append(options)
        raise ModelMemoryError("it did not fit")

    for ctx in context(tmp_path, factory):
        previous = FakeBackend(512)
        ctx.models.attach(previous, LoadOptions(n_ctx=512))
        with pytest.raises(ModelMemoryError):
            ctx.load_planned(tiny_gguf, AUTO)
        assert [a.n_ctx for a in attempts] == [2048, 1024, 512]  # nothing smaller to try
        assert ctx.models.backend is previous


def test_a_cpu_only_build_asked_for_gpu_layers_warns_once(
    tmp_path: Path, tiny_gguf: Path, attempts: list[LoadOptions], caplog: pytest.LogCaptureFixture
) -> None:
    def factory(path: Path, options: LoadOptions) -> FakeBackend:
        attempts.append(options)
        return FakeBackend(options.n_ctx or 0, info=model_info(path))

    for ctx in context(tmp_path, factory, n_gpu_layers=20):
        assert not plans.offload_supported()  # this machine's llama.cpp build is for the CPU
        with caplog.at_level(logging.WARNING):
            first = ctx.load_planned(tiny_gguf, ctx.settings.load_options)
            second = ctx.load_planned(tiny_gguf, ctx.settings.load_options)
        assert [a.n_gpu_layers for a in attempts] == [0, 0]
        assert any("cannot use a GPU" in note for note in first.notes) and first.notes == second.notes
        warned = [r for r in caplog.records if "cannot use a GPU" in r.getMessage()]
        assert len(warned) == 1  # in the log once
        shown = ctx.take_warnings()
        assert len(shown) == 1 and "20 GPU layers" in shown[0]  # in the UI once
        assert ctx.take_warnings() == []


def test_the_performance_settings_reach_llama_cpp(wide_gguf: Path) -> None:
    options = LoadOptions(
        n_ctx=1024, threads=1, threads_batch=2, flash_attn="on", cache_type_k="q8_0", cache_type_v="q4_0",
        use_mmap=False, n_batch=256, n_ubatch=128,
    )  # fmt: skip
    backend = LlamaCppBackend(wide_gguf, options)
    plain = LlamaCppBackend(wide_gguf, LoadOptions(n_ctx=1024, threads=1))
    try:
        llm, buffers = backend._llm, backend.buffers
        assert (llm.n_threads, llm.n_threads_batch, llm.n_batch) == (1, 2, 256)
        assert llm.context_params.n_ubatch == 128
        # Per token and layer: 2 KV heads of 128 as q8_0 (272 bytes) and as q4_0 (144 bytes).
        # llama.cpp logs sizes in MiB with two decimals.
        assert buffers.size("kv") == pytest.approx(2 * 1024 * (272 + 144), abs=MIB / 200)
        assert plain.buffers.size("kv") == 2 * 1024 * 2 * 2 * 128 * 2
        assert not any(b.name == "CPU_Mapped" for b in buffers.buffers)  # read, not mapped
        assert any(b.name == "CPU_Mapped" for b in plain.buffers.buffers)
        assert buffers.size("compute") < plain.buffers.size("compute")  # flash attention, smaller steps
    finally:
        backend.close()
        plain.close()


def test_threads_default_to_the_physical_cores(tiny_gguf: Path) -> None:
    backend = LlamaCppBackend(tiny_gguf, LoadOptions(n_ctx=512))
    try:
        assert backend._llm.n_threads == backend._llm.n_threads_batch == physical_cores()
    finally:
        backend.close()


def test_llama_cpp_running_out_of_memory_is_a_memory_error(wide_gguf: Path) -> None:
    overcommit = Path("/proc/sys/vm/overcommit_memory")
    if overcommit.is_file() and overcommit.read_text().strip() == "1":
        pytest.skip("this system promises any amount of memory, so the allocation would not fail")
    # 2^27 cells of 2 KiB each: a KV cache of 256 GiB, which no allocation grants.
    with pytest.raises(ModelMemoryError, match="did not fit in memory.*kv cache"):
        LlamaCppBackend(wide_gguf, LoadOptions(n_ctx=2**27, threads=1))


def test_the_models_tab_loads_with_its_settings_and_remembers_them(tmp_path: Path, tiny_gguf: Path) -> None:
    from ui.page import build  # gradio: only this test needs it

    for ctx in context(tmp_path, lambda p, o: FakeBackend(o.n_ctx or 0, info=model_info(p))):
        demo = build(ctx)
        fns = [f for f in demo.fns.values() if f.fn is not None]
        load = next(f for f in fns if f.api_name == "load_model")
        pick = next(
            f for f in fns if f.fn.__name__ == "on_pick" and len(f.inputs) == 1 and len(f.outputs) == 12
        )
        item = ctx.library.add(tiny_gguf)
        settings = ["1024", "auto", 2, None, "on", "f16", "f16", False, False, 512, 256]
        line = load.fn(item.id, *settings, None)[1]
        assert line.startswith("Loaded **tiny-llama** (CPU only, 1,024 context, about ")
        assert ctx.models.options is not None and ctx.models.options.n_ctx == 1024
        assert (ctx.models.options.flash_attn, ctx.models.options.use_mmap) == ("on", False)
        # Picking it again brings its settings back, and its plan.
        values = pick.fn(item.id)
        assert values[:11] == ["1024", "auto", 2, None, "on", "f16", "f16", False, False, 512, 256]
        assert values[11].startswith("**Plan:** CPU only, 1,024 context")
