#!/usr/bin/env python3
"""Which llama.cpp backend to build llama-cpp-python with on this machine, and why.

    python3 scripts/accelerator.py                     # the plan, in words
    python3 scripts/accelerator.py --shell             # the plan as shell assignments
    .venv/bin/python scripts/accelerator.py installed  # "<version> <backend>" of the venv's build
    .venv/bin/python scripts/accelerator.py offload    # does that build offload to a GPU?

Standard library only, and Python 3.8+: it runs before the virtual environment exists.
Detection, first match wins:

- Apple Silicon (Darwin + arm64): Metal, which llama.cpp builds there by default.
- NVIDIA: `nvidia-smi` lists a GPU, and a CUDA toolkit is present (`nvcc` on PATH or
  in $CUDA_HOME, $CUDA_PATH or /usr/local/cuda). The GPU's compute capability, when reported, narrows the
  build to that one architecture, which compiles several times faster.
- AMD: `rocminfo` lists a gfx agent, and `hipconfig` is present (on PATH or in
  $ROCM_PATH or /opt/rocm). The gfx names become AMDGPU_TARGETS.
- Vulkan: `glslc` and `vulkan/vulkan.h` (the SDK), and `vulkaninfo` lists a GPU.
- Otherwise the CPU.

`HEARTH_GPU=cuda|rocm|metal|vulkan|cpu` forces a backend (`auto` or empty: detect).
x86 builds keep `-DGGML_NATIVE=OFF` (a -march=native build dies with SIGILL on CPUs that
advertise AMX without granting it). `CMAKE_ARGS` from the environment are added last,
so they win. The `installed` and `offload` commands serve scripts/install_llama.sh and
bench/gpu.py; `offload` asks the build whether it can offload through engine/llama.py
(the one module that imports llama_cpp), in a process of its own.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ("cuda", "rocm", "metal", "vulkan", "cpu")
LABELS = {"cuda": "CUDA", "rocm": "ROCm (HIP)", "metal": "Metal", "vulkan": "Vulkan", "cpu": "the CPU"}
X86 = ("x86_64", "amd64", "i386", "i686", "x86")
# Library names in llama_cpp/lib/ that tell which GPU backend a build carries.
BACKEND_LIBRARIES = (
    ("ggml-cuda", "cuda"),
    ("ggml-hip", "rocm"),
    ("ggml-vulkan", "vulkan"),
    ("ggml-metal", "metal"),
)
INCLUDE_DIRS = (Path("/usr/include"), Path("/usr/local/include"), Path("/opt/homebrew/include"))
ANYWAY = "Set HEARTH_GPU=cuda, rocm or vulkan to build for a GPU anyway."


class PlanError(Exception):
    """The environment asks for something this script cannot plan (a bad HEARTH_GPU)."""


@dataclass
class System:
    """What detection looks at. Tests build one around a folder of fake tools."""

    system: str = field(default_factory=platform.system)
    machine: str = field(default_factory=platform.machine)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    include_dirs: tuple[Path, ...] = INCLUDE_DIRS

    @property
    def cuda_home(self) -> Path:
        """Where the CUDA toolkit lives: $CUDA_HOME, $CUDA_PATH, else /usr/local/cuda."""
        return Path(self.environ.get("CUDA_HOME") or self.environ.get("CUDA_PATH") or "/usr/local/cuda")

    @property
    def rocm_home(self) -> Path:
        """Where ROCm lives: $ROCM_PATH (as llama.cpp's CMake reads it), else /opt/rocm."""
        return Path(self.environ.get("ROCM_PATH") or "/opt/rocm")

    def tool(self, name: str, *extra_dirs: Path) -> str | None:
        """The path of `name` on PATH, else in one of `extra_dirs`."""
        found = shutil.which(name, path=self.environ.get("PATH", ""))
        if found:
            return found
        for folder in extra_dirs:
            candidate = folder / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        return None

    def run(self, *argv: str) -> str | None:
        """A tool's standard output, or None when it is missing, fails or hangs."""
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=20, env=dict(self.environ), check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None


@dataclass
class Plan:
    """The backend to build, the CMake arguments and environment for it, and why."""

    backend: str
    reason: str
    cmake_args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    forced: bool = False  # HEARTH_GPU chose it, not detection

    @property
    def label(self) -> str:
        return LABELS[self.backend]

    def key(self) -> str:
        """One line that changes whenever the build would: backend, arguments, environment."""
        env = " ".join(f"{k}={v}" for k, v in sorted(self.env.items()))
        return " | ".join(part for part in (self.backend, " ".join(self.cmake_args), env) if part)

    def words(self) -> str:
        lines = [self.reason]
        lines += [f"    {note}" for note in self.notes]
        lines.append(f"    CMAKE_ARGS: {' '.join(self.cmake_args) or '(none)'}")
        lines += [f"    with {name}={value}" for name, value in sorted(self.env.items())]
        return "\n".join(lines)

    def shell(self) -> str:
        """Assignments for `eval` in bash 3.2 and later (an indexed array, no associative ones)."""
        q = shlex.quote
        env = " ".join(q(f"{k}={v}") for k, v in sorted(self.env.items()))
        return "\n".join([
            f"HEARTH_BACKEND={q(self.backend)}",
            f"HEARTH_BACKEND_LABEL={q(self.label)}",
            f"HEARTH_FORCED={int(self.forced)}",
            f"HEARTH_CMAKE_ARGS={q(' '.join(self.cmake_args))}",
            f"HEARTH_BUILD_ENV=({env})",
            f"HEARTH_PLAN_KEY={q(self.key())}",
            f"HEARTH_SAY={q(self.words())}",
        ])  # fmt: skip


# -- what each probe finds -------------------------------------------------------------------------


def nvidia_gpus(sys_: System) -> tuple[list[str], list[str]]:
    """NVIDIA GPU names and compute capabilities ("9.0") from nvidia-smi; empty when none."""
    smi = sys_.tool("nvidia-smi")
    if smi is None:
        return [], []
    out = sys_.run(smi, "--query-gpu=name,compute_cap", "--format=csv,noheader")
    if out is not None:
        rows = [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]
        caps = [row[1] for row in rows if len(row) > 1 and re.fullmatch(r"\d+\.\d+", row[1])]
        return [row[0] for row in rows], caps
    out = sys_.run(smi, "-L") or ""  # older drivers cannot report compute_cap
    return re.findall(r"^GPU \d+: (.+?)(?: \(UUID.*)?$", out, re.MULTILINE), []


def cuda_toolkit(sys_: System) -> tuple[str | None, str]:
    """The nvcc path (None when absent) and the CUDA version ("12.4")."""
    nvcc = sys_.tool("nvcc", sys_.cuda_home / "bin")
    if nvcc is None:
        return None, ""
    match = re.search(r"release (\d+\.\d+)", sys_.run(nvcc, "--version") or "")
    return nvcc, match.group(1) if match else "(version unknown)"


def amd_gpus(sys_: System) -> list[str]:
    """The gfx targets rocminfo lists (gfx000 is the CPU agent), without repeats."""
    rocminfo = sys_.tool("rocminfo", sys_.rocm_home / "bin")
    out = sys_.run(rocminfo) if rocminfo else None
    targets = re.findall(r"\bgfx[0-9a-f]{3,}\b", out or "")
    return sorted({t for t in targets if t != "gfx000"})


def hip_toolkit(sys_: System) -> tuple[str, str, str] | None:
    """(HIP version, clang folder, ROCm root) from hipconfig, or None."""
    hipconfig = sys_.tool("hipconfig", sys_.rocm_home / "bin")
    if hipconfig is None:
        return None
    version = re.search(r"\d+\.\d+", sys_.run(hipconfig, "--version") or "")
    clang = (sys_.run(hipconfig, "-l") or "").strip()
    root = (sys_.run(hipconfig, "-R") or "").strip()
    return (version.group(0) if version else "(version unknown)"), clang, root


def vulkan_sdk(sys_: System) -> bool:
    """glslc and the Vulkan headers, which a Vulkan build of llama.cpp needs."""
    dirs = list(sys_.include_dirs)
    if sys_.environ.get("VULKAN_SDK"):
        dirs.insert(0, Path(sys_.environ["VULKAN_SDK"]) / "include")
    headers = any((d / "vulkan" / "vulkan.h").is_file() for d in dirs)
    return headers and sys_.tool("glslc") is not None


def vulkan_gpus(sys_: System) -> list[str]:
    """Names of the GPUs vulkaninfo lists (software renderers such as llvmpipe are CPUs)."""
    vulkaninfo = sys_.tool("vulkaninfo")
    if vulkaninfo is None:
        return []
    out = sys_.run(vulkaninfo, "--summary") or sys_.run(vulkaninfo) or ""
    names = []
    for block in re.split(r"^GPU\d+:", out, flags=re.MULTILINE)[1:]:
        kind = re.search(r"deviceType\s*=\s*(\S+)", block)
        name = re.search(r"deviceName\s*=\s*(.+)", block)
        if kind and name and "CPU" not in kind.group(1):
            names.append(name.group(1).strip())
    return names


def under_rosetta(sys_: System) -> bool:
    return (sys_.run("sysctl", "-n", "sysctl.proc_translated") or "").strip() == "1"


# -- the plan ---------------------------------------------------------------------------------------


def plan(sys_: System) -> Plan:
    """Detect (or take HEARTH_GPU's word for) the backend, and say why.

    Raises:
        PlanError: HEARTH_GPU names no known backend.
    """
    forced = sys_.environ.get("HEARTH_GPU", "").strip().lower()
    if forced not in ("", "auto", *BACKENDS):
        raise PlanError(f"HEARTH_GPU={forced} is not one of {', '.join(BACKENDS)} (or auto).")
    chosen = _forced(sys_, forced) if forced not in ("", "auto") else _detect(sys_)
    chosen.forced = forced not in ("", "auto")
    user = shlex.split(sys_.environ.get("CMAKE_ARGS", ""))
    if user:
        chosen.notes.append(f"Your CMAKE_ARGS come last, so they win: {' '.join(user)}")
    chosen.cmake_args = _base_args(sys_, chosen.backend) + chosen.cmake_args + user
    return chosen


def _base_args(sys_: System, backend: str) -> list[str]:
    args = ["-DGGML_NATIVE=OFF"] if sys_.machine.lower() in X86 else []
    if backend != "metal" and sys_.system == "Darwin":
        args.append("-DGGML_METAL=off")  # llama.cpp turns it on by default on macOS
    return args


def _detect(sys_: System) -> Plan:
    notes: list[str] = []
    if sys_.system == "Darwin" and sys_.machine == "arm64":
        found = "Found Apple Silicon (Darwin arm64)"
        return Plan("metal", f"{found}: building llama-cpp-python with Metal", ["-DGGML_METAL=on"])
    names, caps = nvidia_gpus(sys_)
    nvcc, cuda = cuda_toolkit(sys_)
    gpu = f"NVIDIA GPU (nvidia-smi: {', '.join(names)})"
    if names and nvcc:
        return _cuda_plan(sys_, f"Found {gpu} and CUDA {cuda} (nvcc)", nvcc, caps)
    if names:
        notes.append(f"Found {gpu} but no CUDA toolkit (no nvcc on PATH or in {sys_.cuda_home}/bin).")
    elif nvcc:
        notes.append(f"Found CUDA {cuda} (nvcc) but no NVIDIA GPU (nvidia-smi is missing or lists none).")
    targets, hip = amd_gpus(sys_), hip_toolkit(sys_)
    amd = f"AMD GPU (rocminfo: {', '.join(targets)})"
    if targets and hip:
        return _rocm_plan(f"Found {amd} and ROCm/HIP {hip[0]} (hipconfig)", targets, hip, notes)
    if targets:
        notes.append(f"Found {amd} but no hipconfig (ROCm's HIP SDK).")
    gpus, sdk = vulkan_gpus(sys_), vulkan_sdk(sys_)
    vulkan = f"a Vulkan GPU (vulkaninfo: {', '.join(gpus)})"
    if gpus and sdk:
        found = f"Found {vulkan} and the Vulkan SDK (glslc, vulkan.h)"
        args = ["-DGGML_VULKAN=on"]
        return Plan("vulkan", f"{found}: building llama-cpp-python with Vulkan", args, notes=notes)
    if sdk:
        notes.append("Found the Vulkan SDK (glslc, vulkan.h) but vulkaninfo lists no GPU.")
    elif gpus:
        notes.append(f"Found {vulkan} but no Vulkan SDK (glslc, vulkan.h).")
    if notes:
        notes.append(ANYWAY)
    if sys_.system == "Darwin" and under_rosetta(sys_):
        notes.append("This Python runs under Rosetta on Apple Silicon; an arm64 one builds with Metal.")
    if names or targets or gpus:
        return Plan("cpu", "No usable GPU toolchain: building llama-cpp-python for the CPU", [], notes=notes)
    why = "an Intel Mac" if sys_.system == "Darwin" else "nvidia-smi, rocminfo and vulkaninfo list none"
    return Plan("cpu", f"No GPU found ({why}): building llama-cpp-python for the CPU", [], notes=notes)


def _cuda_plan(sys_: System, found: str, nvcc: str | None, caps: Sequence[str]) -> Plan:
    args = ["-DGGML_CUDA=on"]
    archs = sorted({cap.replace(".", "") for cap in caps})
    if archs:  # one architecture instead of llama.cpp's list of five or more
        args.append(f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(archs)}")
    on_path = shutil.which("nvcc", path=sys_.environ.get("PATH", "")) is not None
    env = {"CUDACXX": nvcc} if nvcc and not on_path else {}
    return Plan("cuda", f"{found}: building llama-cpp-python with CUDA", args, env)


def _rocm_plan(found: str, targets: Sequence[str], hip: tuple[str, str, str], notes: list[str]) -> Plan:
    args = ["-DGGML_HIP=on"] + ([f"-DAMDGPU_TARGETS={';'.join(targets)}"] if targets else [])
    _version, clang, root = hip
    env = {}
    if clang:
        env["HIPCXX"] = f"{clang}/clang"
    if root:
        env["HIP_PATH"] = root
    return Plan("rocm", f"{found}: building llama-cpp-python with ROCm (HIP)", args, env, notes)


def _forced(sys_: System, backend: str) -> Plan:
    how = "for" if backend == "cpu" else "with"
    asked = f"HEARTH_GPU={backend}: building llama-cpp-python {how} {LABELS[backend]} as asked"
    if backend == "cuda":
        nvcc, _ = cuda_toolkit(sys_)
        chosen = _cuda_plan(sys_, "", nvcc, nvidia_gpus(sys_)[1])
        missing = "" if nvcc else "nvcc (the CUDA toolkit) was not found"
    elif backend == "rocm":
        hip = hip_toolkit(sys_)
        chosen = _rocm_plan("", amd_gpus(sys_), hip or ("", "", ""), [])
        missing = "" if hip else "hipconfig (ROCm) was not found"
    elif backend == "metal":
        chosen = Plan("metal", "", ["-DGGML_METAL=on"])
        apple = sys_.system == "Darwin" and sys_.machine == "arm64"
        missing = "" if apple else "Metal needs macOS on Apple Silicon"
    elif backend == "vulkan":
        chosen = Plan("vulkan", "", ["-DGGML_VULKAN=on"])
        missing = "" if vulkan_sdk(sys_) else "glslc or vulkan/vulkan.h was not found"
    else:
        chosen, missing = Plan("cpu", "", []), ""
    chosen.reason = asked
    if missing:
        chosen.notes.append(f"Warning: {missing}, so this build will likely fail (the CPU build follows).")
    return chosen


# -- the installed build ----------------------------------------------------------------------------


def installed() -> str:
    """The version and backend of this Python's llama-cpp-python ("0.3.36 cuda"), or "none".

    Reads file names only: importing llama_cpp could load a library built for another machine.
    """
    import importlib.util
    from importlib import metadata

    try:
        version = metadata.version("llama-cpp-python")
        spec = importlib.util.find_spec("llama_cpp")
    except (metadata.PackageNotFoundError, ImportError, ValueError):
        return "none"
    if spec is None or not spec.submodule_search_locations:
        return "none"
    libs = [p.name for folder in spec.submodule_search_locations for p in (Path(folder) / "lib").glob("*")]
    for marker, backend in BACKEND_LIBRARIES:
        if any(marker in name for name in libs):
            return f"{version} {backend}"
    return f"{version} cpu"


def offload() -> int:
    """Say whether the installed build offloads layers to a GPU: exit 0 if so, 1 if not, 2 if unknown."""
    # Asked through engine/llama.py, the one module that imports llama_cpp.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from engine.llama import gpu_offload_supported
    except Exception as exc:  # whatever stops the library loading is the answer
        print(f"    llama-cpp-python could not be imported: {exc}")
        return 2
    asked = "llama_cpp.llama_supports_gpu_offload()"
    if gpu_offload_supported():
        print(f"    GPU offload: yes ({asked} is True); load models with --n-gpu-layers -1")
        return 0
    backend = installed().partition(" ")[2]
    if backend in ("", "cpu"):
        print(f"    GPU offload: no ({asked} is False): this build runs on the CPU only")
    else:  # the answer counts the GPUs found now, not what the build could use
        print(f"    GPU offload: no ({asked} is False): this {LABELS[backend]} build sees no GPU now")
    return 1


def main(argv: Sequence[str]) -> int:
    command = argv[0] if argv else "plan"
    if command == "installed":
        print(installed())
        return 0
    if command == "offload":
        return offload()
    if command not in ("plan", "--shell"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        chosen = plan(System())
    except PlanError as exc:
        print(f"==> {exc}", file=sys.stderr)
        return 2
    print(chosen.shell() if command == "--shell" else chosen.words())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
