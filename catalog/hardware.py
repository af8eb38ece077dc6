"""The machine a model will run on: its cores, its free memory, and its GPUs.

Memory and cores come from psutil, which reads them the same way on Linux, macOS and
Windows. GPUs are asked through their vendors' tools: `nvidia-smi` for NVIDIA and
`rocm-smi` for AMD. On Apple Silicon the GPU shares the computer's memory (unified
memory), so its free memory is the free RAM. A tool that is missing, slow or says
something unexpected means "no GPU of that kind", never an error.
"""

from __future__ import annotations

import functools
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil

from catalog import fit
from engine.resources import physical_cores

TOOL_TIMEOUT_S = 5.0
GPU_TTL_S = 2.0  # a page of catalog cards plans once per card: ask the GPU tools once per page
MIB = 1 << 20
Run = Callable[[Sequence[str]], str | None]


@dataclass(frozen=True)
class Gpu:
    """One GPU's memory, as its vendor's tool reports it."""

    name: str
    free: int  # bytes
    total: int  # bytes


@dataclass(frozen=True)
class Machine:
    """What a load plan sets a model against."""

    ram_free: int  # bytes the system can give without swapping (psutil's "available")
    ram_total: int
    gpus: tuple[Gpu, ...] = ()
    unified: bool = False  # the GPU uses the RAM (Apple Silicon)
    cores: int = 1  # physical
    logical_cores: int = 1

    @property
    def gpu_free(self) -> int:
        """Free GPU memory, all GPUs together (llama.cpp splits layers across them)."""
        return self.ram_free if self.unified else sum(g.free for g in self.gpus)

    @property
    def gpu_total(self) -> int:
        return self.ram_total if self.unified else sum(g.total for g in self.gpus)

    @property
    def has_gpu(self) -> bool:
        return self.unified or bool(self.gpus)


def discover(run: Run | None = None) -> Machine:
    """The machine as it is now: free memory is read afresh on every call.

    Raises:
        CatalogError: the system does not say how much memory is free.
    """
    unified = sys.platform == "darwin" and platform.machine() == "arm64"
    gpus = () if unified else _gpus(run) if run else _gpus_at(int(time.monotonic() / GPU_TTL_S))
    return Machine(
        ram_free=fit.available_memory(),
        ram_total=int(psutil.virtual_memory().total),
        gpus=gpus,
        unified=unified,
        cores=physical_cores(),
        logical_cores=psutil.cpu_count() or 1,
    )


@functools.lru_cache(maxsize=1)
def _gpus_at(_tick: int) -> tuple[Gpu, ...]:
    return _gpus(None)


def _gpus(run: Run | None) -> tuple[Gpu, ...]:
    return nvidia_gpus(run) or rocm_gpus(run)


def nvidia_gpus(run: Run | None = None) -> tuple[Gpu, ...]:
    """NVIDIA GPUs from `nvidia-smi --query-gpu=name,memory.free,memory.total` (MiB)."""
    out = (run or _run)(
        ["nvidia-smi", "--query-gpu=name,memory.free,memory.total", "--format=csv,noheader,nounits"]
    )
    gpus = []
    for row in (out or "").splitlines():
        parts = [part.strip() for part in row.rsplit(",", 2)]  # a name may hold commas
        if len(parts) != 3:
            continue
        try:
            free, total = int(float(parts[1])) * MIB, int(float(parts[2])) * MIB
        except ValueError:
            continue  # "[N/A]" on some boards
        gpus.append(Gpu(parts[0], free, total))
    return tuple(gpus)


_ROCM_LINE = re.compile(r"GPU\[(\d+)\].*VRAM Total (Used )?Memory \(B\):\s*(\d+)")


def rocm_gpus(run: Run | None = None) -> tuple[Gpu, ...]:
    """AMD GPUs from `rocm-smi --showmeminfo vram`: total and used bytes per GPU."""
    out = (run or _run)(["rocm-smi", "--showmeminfo", "vram"])
    totals: dict[int, int] = {}
    used: dict[int, int] = {}
    for match in _ROCM_LINE.finditer(out or ""):
        (used if match[2] else totals)[int(match[1])] = int(match[3])
    return tuple(
        Gpu(f"AMD GPU {index}", max(0, total - used.get(index, 0)), total)
        for index, total in sorted(totals.items())
    )


def _run(command: Sequence[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
