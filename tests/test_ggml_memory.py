"""Converting streams through the file: a legacy model many times larger than what the
conversion holds in memory still converts (a 7 GB file must never be read into RAM)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from gguf import GGMLQuantizationType as T

from catalog.ggml import ConvertOptions, convert_to_gguf
from ggml_writer import TinyShape, write_llama

# About 64 MB of F32 weights: two layers of 1024-wide attention and a 4096-wide MLP.
BIG = TinyShape(n_embd=1024, n_head=8, n_head_kv=8, n_ff=4096, n_layer=2)


def test_a_large_file_converts_without_being_read_into_memory(tmp_path: Path) -> None:
    legacy = write_llama(tmp_path / "big.bin", BIG, weight_type=T.F32)
    size = legacy.stat().st_size
    assert size > 60 * 2**20
    options = ConvertOptions(name="big-legacy", context_length=2048, rms_epsilon=1e-5)
    tracemalloc.start()
    try:
        convert_to_gguf(legacy, tmp_path / "big.gguf", options)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (tmp_path / "big.gguf").stat().st_size > size * 0.99  # every weight was copied
    # Python-side allocations stay a small fraction of the file: chunks of a tensor at a
    # time, never a whole tensor list or the file (reading it whole would exceed `size`).
    assert peak < size / 4, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"
