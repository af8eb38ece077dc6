"""What a model takes from the machine: the cores it runs on, and the memory llama.cpp
says it allocated, read from its log.

llama.cpp reports every buffer it allocates while loading, one line each:

    load_tensors:   CPU_Mapped model buffer size =   235.16 MiB
    llama_kv_cache:        CPU KV buffer size =    12.00 MiB
    llama_context:        CPU  output buffer size =     1.00 MiB
    sched_reserve:      CUDA0 compute buffer size =   514.50 MiB

The name before the part is the buffer type: `CPU`, `CPU_Mapped` (the file, memory-mapped)
and `CPU_REPACK` (weights rearranged for faster CPU math) are host memory, and so is a GPU
backend's pinned `<name>_Host` buffer; `CUDA0`, `ROCm0`, `Vulkan0`, `Metal`… are on a GPU.
These numbers are what `catalog.fit` checks its estimate against.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import psutil

Part = Literal["model", "kv", "output", "compute"]
PARTS: tuple[Part, ...] = ("model", "kv", "output", "compute")
MIB = 1 << 20
_LINE = re.compile(r"\b(\w+)\s+(model|KV|RS|output|compute) buffer size =\s*([\d.]+) MiB")
_PART: dict[str, Part] = {"model": "model", "KV": "kv", "RS": "kv", "output": "output", "compute": "compute"}
# How llama.cpp and its GPU backends say an allocation failed.
_OUT_OF_MEMORY = re.compile(
    r"failed to allocate|out of memory|unable to allocate|cudaMalloc failed|"
    r"not enough (?:space|memory)|ErrorOutOfDeviceMemory|failed to create .* buffer",
    re.IGNORECASE,
)


def physical_cores() -> int:
    """The CPU's physical cores, else its logical ones: llama.cpp generates fastest with one
    thread per physical core (hyper-threads share the same arithmetic units)."""
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or os.cpu_count() or 1


@dataclass(frozen=True)
class Buffer:
    """One buffer llama.cpp allocated: which part of the model it holds, where, how big."""

    part: Part
    name: str  # llama.cpp's buffer type: CPU, CPU_Mapped, CUDA0, CUDA_Host, Metal…
    size: int  # bytes

    @property
    def on_gpu(self) -> bool:
        return not (self.name.startswith("CPU") or self.name.endswith("_Host"))


@dataclass(frozen=True)
class BufferSizes:
    """Every buffer a load allocated, as llama.cpp reported them."""

    buffers: tuple[Buffer, ...] = ()

    def size(self, part: Part | None = None, *, gpu: bool | None = None) -> int:
        """Bytes of one part (all parts when None), on the GPU, the host, or both (None)."""
        return sum(
            b.size
            for b in self.buffers
            if (part is None or b.part == part) and (gpu is None or b.on_gpu == gpu)
        )

    @property
    def total(self) -> int:
        return self.size()


def parse_buffer_sizes(log_text: str) -> BufferSizes:
    """The buffers a llama.cpp load log reports, in the order it reported them."""
    return BufferSizes(
        tuple(Buffer(_PART[m[2]], m[1], round(float(m[3]) * MIB)) for m in _LINE.finditer(log_text))
    )


def out_of_memory(log_text: str) -> bool:
    """Whether a load log says an allocation failed (memory, not a bad file)."""
    return _OUT_OF_MEMORY.search(log_text) is not None


def memory_complaint(log_lines: list[str]) -> str:
    """llama.cpp's own words about a failed allocation: its last line that names one."""
    said = [line.strip() for line in "".join(log_lines).splitlines() if out_of_memory(line)]
    return said[-1][:200] if said else "out of memory"


_REASONS = ("llama_init_from_model:", "llama_model_load:", "llama_model_load_from_file_impl:")


def llama_said(exc: Exception, log_lines: list[str]) -> str:
    """llama-cpp-python's error, with the reason llama.cpp logged for it when there is one
    ("Failed to create llama_context" says little; the log says which setting it refused)."""
    said = [line.strip() for line in "".join(log_lines).splitlines() if line.startswith(_REASONS)]
    return f"{exc} ({said[-1][:300]})" if said else str(exc)


class LoadLog:
    """What llama.cpp logs while a model loads: its buffer sizes, and why a load failed.

    llama.cpp has one log callback per process, so loads take turns while one is read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] | None = None

    def write(self, text: str) -> None:
        lines = self._lines
        if lines is not None:
            lines.append(text)

    @contextmanager
    def reading(self) -> Iterator[list[str]]:
        """Collect what is logged inside the `with` block, into the list it yields."""
        with self._lock:
            lines: list[str] = []
            self._lines = lines
            try:
                yield lines
            finally:
                self._lines = None
