"""Loading real GGUF files with llama.cpp, and every way a model file can be wrong."""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

import pytest

from engine.errors import CorruptModelError, LegacyGGMLError, ModelNotFoundError, NotGGUFError
from engine.gguf import read_header
from engine.manager import ModelManager
from engine.types import FinishReason, GenerationRequest, LoadOptions
from presets.samplers import SamplerParams
from tiny_model import N_LAYER, write_tiny_llama

OPTIONS = LoadOptions(n_ctx=512, threads=2)


@pytest.fixture(scope="module")
def manager(tiny_gguf: Path) -> ModelManager:
    manager = ModelManager()
    manager.load(tiny_gguf, OPTIONS)
    return manager


def test_header_facts_without_loading_weights(tiny_gguf: Path) -> None:
    header = read_header(tiny_gguf)
    assert header.metadata["general.architecture"] == "llama"
    assert header.arch_value("block_count") == N_LAYER
    assert header.array_lengths["tokenizer.ggml.tokens"] == 263
    assert len(header.tensors) == 3 + 9 * N_LAYER


def test_loaded_model_facts(manager: ModelManager, tiny_gguf: Path) -> None:
    info = manager.info
    assert info is not None
    assert (info.name, info.architecture, info.quant) == ("tiny-llama", "llama", "F32")
    assert info.file_size == tiny_gguf.stat().st_size
    assert info.context_length == 2048
    assert manager.backend.n_ctx == 512


def test_streams_and_counts_tokens(manager: ModelManager) -> None:
    run = manager.start(GenerationRequest("hello world", SamplerParams(max_new_tokens=8, seed=3)), "t")
    chunks = list(run.updates(0.001))
    finish = run.wait(30)
    assert chunks and chunks[-1] == run.text
    assert finish.reason is FinishReason.LENGTH
    assert finish.usage.prompt_tokens == len(manager.backend.tokenize("hello world")) + 1  # + BOS
    assert finish.usage.completion_tokens == 8  # the limit, never one more


def test_prefix_is_reused_on_the_next_turn(manager: ModelManager) -> None:
    params = SamplerParams(max_new_tokens=4, seed=1)
    first = manager.start(GenerationRequest("hello world the end hello world", params), "t")
    first.wait(30)
    second = manager.start(GenerationRequest("hello world the end hello world and more", params), "t")
    usage = second.wait(30).usage
    assert usage.prompt_reused >= len(manager.backend.tokenize("hello world the end hello world"))
    assert usage.prompt_evaluated == usage.prompt_tokens - usage.prompt_reused
    assert usage.prompt_evaluated < usage.prompt_tokens


def long_running_seed(manager: ModelManager) -> int:
    """A seed whose random-weight output runs 300 tokens without an end-of-sequence."""
    for seed in range(50):
        run = manager.start(GenerationRequest("hello", SamplerParams(max_new_tokens=300, seed=seed)), "t")
        if run.wait(30).reason is FinishReason.LENGTH:
            return seed
    raise AssertionError("no seed ran 300 tokens")


def test_cancel_through_the_run_event(manager: ModelManager) -> None:
    seed = long_running_seed(manager)
    run = manager.start(GenerationRequest("hello", SamplerParams(max_new_tokens=300, seed=seed)), "t")
    while len(run.text) < 3 and not run.done:
        time.sleep(0.001)
    run.stop()
    finish = run.wait(30)
    assert finish.reason is FinishReason.CANCELLED
    assert finish.usage.completion_tokens < 300


def test_stop_strings_are_passed_to_llama(manager: ModelManager) -> None:
    """Whatever the model writes, no stop string ever appears in the reply."""
    params = SamplerParams(max_new_tokens=60, seed=5, temperature=1.5)
    for stop in ("e", "a", "o"):
        run = manager.start(GenerationRequest("hello world", params, (stop,)), "t")
        run.wait(30)
        assert stop not in run.text


# -- bad files -----------------------------------------------------------------------------


def loaded_name(manager: ModelManager) -> str:
    assert manager.info is not None
    return manager.info.name


def test_missing_file(tmp_path: Path, manager: ModelManager) -> None:
    with pytest.raises(ModelNotFoundError, match="There is no model file"):
        manager.load(tmp_path / "nope.gguf", OPTIONS)
    assert loaded_name(manager) == "tiny-llama"


def test_not_a_gguf(tmp_path: Path, manager: ModelManager) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("just some text, not a model")
    with pytest.raises(NotGGUFError, match="not a GGUF model file"):
        manager.load(path, OPTIONS)
    assert loaded_name(manager) == "tiny-llama"


@pytest.mark.parametrize(
    "magic, version, label",
    [
        (b"lmgg", b"", "GGML"),
        (b"fmgg", struct.pack("<I", 1), "GGMF v1"),
        (b"tjgg", struct.pack("<I", 3), "GGJT v3"),
    ],
)
def test_legacy_ggml_is_named(
    tmp_path: Path, manager: ModelManager, magic: bytes, version: bytes, label: str
) -> None:
    path = tmp_path / "old-model.ggmlv3.q4_0.bin"
    path.write_bytes(magic + version + b"\0" * 64)
    with pytest.raises(LegacyGGMLError, match=f"legacy GGML model \\({label}\\)") as caught:
        manager.load(path, OPTIONS)
    assert caught.value.container == label
    assert loaded_name(manager) == "tiny-llama"


def test_truncated_download(tmp_path: Path, tiny_gguf: Path, manager: ModelManager) -> None:
    path = tmp_path / "cut.gguf"
    data = tiny_gguf.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CorruptModelError, match="truncated"):
        manager.load(path, OPTIONS)
    assert loaded_name(manager) == "tiny-llama"


def test_truncated_inside_the_header(tmp_path: Path, tiny_gguf: Path, manager: ModelManager) -> None:
    path = tmp_path / "stub.gguf"
    path.write_bytes(tiny_gguf.read_bytes()[:300])
    with pytest.raises(CorruptModelError, match="damaged or cut short"):
        manager.load(path, OPTIONS)


def test_corrupt_header(tmp_path: Path, tiny_gguf: Path, manager: ModelManager) -> None:
    data = bytearray(tiny_gguf.read_bytes())
    data[8:16] = struct.pack("<Q", 2**60)  # an impossible tensor count
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptModelError):
        manager.load(path, OPTIONS)
    assert loaded_name(manager) == "tiny-llama"


def test_loading_another_model_replaces_the_first(tmp_path: Path) -> None:
    manager = ModelManager()
    manager.load(write_tiny_llama(tmp_path / "a.gguf", name="model-a"), OPTIONS)
    progress: list[str] = []
    manager.load(
        write_tiny_llama(tmp_path / "b.gguf", name="model-b"), OPTIONS, lambda f, m: progress.append(m)
    )
    assert loaded_name(manager) == "model-b"
    assert progress[0].startswith("Reading") and progress[-1] == "Loaded model-b"


def test_concurrent_users_share_the_model_one_at_a_time(manager: ModelManager) -> None:
    params = SamplerParams(max_new_tokens=16, seed=9)
    before = set(threading.enumerate())
    runs = [manager.start(GenerationRequest(f"hello {i}", params), f"user-{i}") for i in range(3)]
    results = [run.wait(60) for run in runs]
    # Each one ran to its end (a random model may also sample its end-of-text token).
    assert all(r.reason in (FinishReason.LENGTH, FinishReason.STOP) for r in results)
    assert all(run.error is None for run in runs)
    # One worker serves every user: at most one thread outlives the runs.
    left = [t.name for t in threading.enumerate() if t not in before]
    assert len(left) <= 1, left
