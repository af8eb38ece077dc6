"""scripts/accelerator.py: which backend llama-cpp-python is built for, and why.

Every probe runs a real subprocess, so each test writes fake tools (tiny shell scripts)
into a folder and makes it the whole PATH; the platform comes from the `System` fields.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


acc = load_script("accelerator")

H100 = "NVIDIA H100 80GB HBM3, 9.0\n"
NVCC = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 12.4, V12.4.131\n"
ROCMINFO = """\
Agent 1
  Name:                    AMD Ryzen 9 7950X
  Marketing Name:          AMD Ryzen 9 7950X
  Device Type:             CPU
Agent 2
  Name:                    gfx1100
  Marketing Name:          AMD Radeon RX 7900 XTX
  Device Type:             GPU
      Name:                    amdgcn-amd-amdhsa--gfx1100
"""
VULKANINFO_GPU = """\
Devices:
========
GPU0:
\tapiVersion         = 1.3.277
\tdeviceType         = PHYSICAL_DEVICE_TYPE_DISCRETE_GPU
\tdeviceName         = AMD Radeon RX 6600
GPU1:
\tdeviceType         = PHYSICAL_DEVICE_TYPE_CPU
\tdeviceName         = llvmpipe (LLVM 15.0.7, 256 bits)
"""
VULKANINFO_CPU_ONLY = (
    "GPU0:\n\tdeviceType         = PHYSICAL_DEVICE_TYPE_CPU\n\tdeviceName         = llvmpipe\n"
)


class Machine:
    """A fake machine: a folder of tools that is the whole PATH, and the platform's names."""

    def __init__(self, tmp: Path, system: str = "Linux", machine: str = "x86_64") -> None:
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.include = tmp / "include"
        self.env: dict[str, str] = {"PATH": str(self.bin), "CUDA_HOME": str(tmp / "no-cuda"),
                                    "ROCM_PATH": str(tmp / "no-rocm")}  # fmt: skip
        self.system, self.machine = system, machine

    def tool(self, name: str, output: str = "", status: int = 0, folder: Path | None = None) -> Path:
        """A tool that prints `output` and exits with `status`, whatever its arguments."""
        where = folder or self.bin
        where.mkdir(parents=True, exist_ok=True)
        path = where / name
        path.write_text(f"#!/bin/sh\n/bin/cat <<'EOF'\n{output}EOF\nexit {status}\n")
        path.chmod(0o755)
        return path

    def script(self, name: str, body: str, folder: Path | None = None) -> Path:
        where = folder or self.bin
        where.mkdir(parents=True, exist_ok=True)
        path = where / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
        return path

    def vulkan_sdk(self) -> None:
        (self.include / "vulkan").mkdir(parents=True)
        (self.include / "vulkan" / "vulkan.h").write_text("/* fake */\n")
        self.tool("glslc")

    def hipconfig(self, folder: Path | None = None) -> None:
        self.script("hipconfig", 'case "$1" in\n  --version) echo 6.1.40091-a8dbc0c19 ;;\n'
                    '  -l) echo /opt/rocm/llvm/bin ;;\n  -R) echo /opt/rocm ;;\nesac\n', folder)  # fmt: skip

    def plan(self, **env: str):  # type: ignore[no-untyped-def]
        system = acc.System(system=self.system, machine=self.machine, environ={**self.env, **env},
                            include_dirs=(self.include,))  # fmt: skip
        return acc.plan(system)


@pytest.fixture
def box(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


# -- detection ----------------------------------------------------------------------------------


def test_nothing_found_builds_for_the_cpu_without_native_on_x86(box: Machine) -> None:
    plan = box.plan()
    assert plan.backend == "cpu"
    assert plan.cmake_args == ["-DGGML_NATIVE=OFF"]
    assert plan.reason.startswith("No GPU found")
    assert plan.notes == []


def test_nvidia_gpu_and_nvcc_build_cuda_for_that_gpu_only(box: Machine) -> None:
    box.tool("nvidia-smi", H100)
    box.tool("nvcc", NVCC)
    plan = box.plan()
    assert plan.backend == "cuda"
    assert plan.reason == (
        "Found NVIDIA GPU (nvidia-smi: NVIDIA H100 80GB HBM3) and CUDA 12.4 (nvcc): "
        "building llama-cpp-python with CUDA"
    )
    assert plan.cmake_args == ["-DGGML_NATIVE=OFF", "-DGGML_CUDA=on", "-DCMAKE_CUDA_ARCHITECTURES=90"]
    assert plan.env == {}  # nvcc is on PATH, so CMake finds it


def test_two_gpu_kinds_build_both_architectures(box: Machine) -> None:
    box.tool("nvidia-smi", "NVIDIA GeForce RTX 4090, 8.9\nNVIDIA GeForce RTX 3090, 8.6\n")
    box.tool("nvcc", NVCC)
    assert "-DCMAKE_CUDA_ARCHITECTURES=86;89" in box.plan().cmake_args


def test_an_old_driver_without_compute_cap_still_finds_the_gpu(box: Machine) -> None:
    box.script("nvidia-smi", 'if [ "$1" = -L ]; then echo "GPU 0: Tesla T4 (UUID: GPU-1234)"; exit 0; fi\n'
                             'echo "Field compute_cap is not a valid field"; exit 2\n')  # fmt: skip
    box.tool("nvcc", NVCC)
    plan = box.plan()
    assert plan.backend == "cuda"
    assert "(nvidia-smi: Tesla T4)" in plan.reason
    assert not any("ARCHITECTURES" in arg for arg in plan.cmake_args)


def test_nvcc_under_cuda_home_is_found_and_handed_to_cmake(box: Machine) -> None:
    box.tool("nvidia-smi", H100)
    nvcc = box.tool("nvcc", NVCC, folder=box.tmp / "cuda" / "bin")
    plan = box.plan(CUDA_HOME=str(box.tmp / "cuda"))
    assert plan.backend == "cuda"
    assert plan.env == {"CUDACXX": str(nvcc)}


def test_a_failing_nvidia_smi_means_no_gpu_even_with_a_toolkit(box: Machine) -> None:
    box.tool("nvidia-smi", "NVIDIA-SMI has failed because it couldn't communicate with the driver.\n", 9)
    box.tool("nvcc", NVCC)
    plan = box.plan()
    assert plan.backend == "cpu"
    assert plan.reason.startswith("No GPU found")
    assert "Found CUDA 12.4 (nvcc) but no NVIDIA GPU" in plan.notes[0]
    assert plan.notes[-1] == acc.ANYWAY


def test_an_nvidia_gpu_without_a_toolkit_says_what_is_missing(box: Machine) -> None:
    box.tool("nvidia-smi", H100)
    plan = box.plan()
    assert plan.backend == "cpu"
    assert plan.reason.startswith("No usable GPU toolchain")
    assert plan.notes[0].startswith(
        "Found NVIDIA GPU (nvidia-smi: NVIDIA H100 80GB HBM3) but no CUDA toolkit"
    )


def test_an_nvidia_gpu_without_cuda_uses_vulkan_when_its_sdk_is_there(box: Machine) -> None:
    box.tool("nvidia-smi", H100)
    box.vulkan_sdk()
    box.tool("vulkaninfo", VULKANINFO_GPU)
    plan = box.plan()
    assert plan.backend == "vulkan"
    assert plan.cmake_args == ["-DGGML_NATIVE=OFF", "-DGGML_VULKAN=on"]
    assert "vulkaninfo: AMD Radeon RX 6600" in plan.reason  # llvmpipe is a CPU, not listed
    assert "no CUDA toolkit" in plan.notes[0]


def test_amd_gpu_with_rocm_builds_hip_for_its_gfx_targets(box: Machine) -> None:
    box.tool("rocminfo", ROCMINFO)
    box.hipconfig()
    plan = box.plan()
    assert plan.backend == "rocm"
    assert plan.reason == (
        "Found AMD GPU (rocminfo: gfx1100) and ROCm/HIP 6.1 (hipconfig): "
        "building llama-cpp-python with ROCm (HIP)"
    )
    assert plan.cmake_args == ["-DGGML_NATIVE=OFF", "-DGGML_HIP=on", "-DAMDGPU_TARGETS=gfx1100"]
    assert plan.env == {"HIPCXX": "/opt/rocm/llvm/bin/clang", "HIP_PATH": "/opt/rocm"}


def test_rocm_tools_under_rocm_path_are_found(box: Machine) -> None:
    rocm_bin = box.tmp / "rocm" / "bin"
    box.tool("rocminfo", ROCMINFO, folder=rocm_bin)
    box.hipconfig(folder=rocm_bin)
    assert box.plan(ROCM_PATH=str(box.tmp / "rocm")).backend == "rocm"


def test_amd_gpu_without_hipconfig_is_explained(box: Machine) -> None:
    box.tool("rocminfo", ROCMINFO)
    plan = box.plan()
    assert plan.backend == "cpu"
    assert "Found AMD GPU (rocminfo: gfx1100) but no hipconfig" in plan.notes[0]


def test_vulkan_sdk_with_only_a_software_renderer_stays_on_the_cpu(box: Machine) -> None:
    box.vulkan_sdk()
    box.tool("vulkaninfo", VULKANINFO_CPU_ONLY)
    plan = box.plan()
    assert plan.backend == "cpu"
    assert plan.notes[0] == "Found the Vulkan SDK (glslc, vulkan.h) but vulkaninfo lists no GPU."


def test_vulkan_headers_from_the_vulkan_sdk_variable(box: Machine) -> None:
    sdk = box.tmp / "VulkanSDK"
    (sdk / "include" / "vulkan").mkdir(parents=True)
    (sdk / "include" / "vulkan" / "vulkan.h").write_text("")
    box.tool("glslc")
    box.tool("vulkaninfo", VULKANINFO_GPU)
    assert box.plan(VULKAN_SDK=str(sdk)).backend == "vulkan"


def test_apple_silicon_builds_metal_with_native_code(tmp_path: Path) -> None:
    plan = Machine(tmp_path, "Darwin", "arm64").plan()
    assert plan.backend == "metal"
    assert plan.reason == "Found Apple Silicon (Darwin arm64): building llama-cpp-python with Metal"
    assert plan.cmake_args == ["-DGGML_METAL=on"]


def test_an_intel_mac_builds_for_the_cpu_with_metal_off(tmp_path: Path) -> None:
    plan = Machine(tmp_path, "Darwin", "x86_64").plan()
    assert plan.backend == "cpu"
    assert plan.cmake_args == ["-DGGML_NATIVE=OFF", "-DGGML_METAL=off"]
    assert "Intel Mac" in plan.reason


def test_python_under_rosetta_is_pointed_at_an_arm64_python(tmp_path: Path) -> None:
    mac = Machine(tmp_path, "Darwin", "x86_64")
    mac.tool("sysctl", "1\n")
    plan = mac.plan()
    assert plan.backend == "cpu"
    assert len(plan.notes) == 1 and "Rosetta" in plan.notes[0]


def test_arm_linux_keeps_native_code(tmp_path: Path) -> None:
    assert Machine(tmp_path, "Linux", "aarch64").plan().cmake_args == []


# -- HEARTH_GPU and CMAKE_ARGS -----------------------------------------------------------------------


def test_hearth_gpu_forces_a_backend_in_any_case(box: Machine) -> None:
    box.tool("nvcc", NVCC)
    plan = box.plan(HEARTH_GPU="CUDA")
    assert plan.backend == "cuda"
    assert plan.reason == "HEARTH_GPU=cuda: building llama-cpp-python with CUDA as asked"
    assert plan.notes == []


def test_hearth_gpu_cpu_wins_over_a_gpu(box: Machine) -> None:
    box.tool("nvidia-smi", H100)
    box.tool("nvcc", NVCC)
    plan = box.plan(HEARTH_GPU="cpu")
    assert (plan.backend, plan.cmake_args) == ("cpu", ["-DGGML_NATIVE=OFF"])


def test_hearth_gpu_auto_detects(box: Machine) -> None:
    assert box.plan(HEARTH_GPU="auto").reason.startswith("No GPU found")


@pytest.mark.parametrize(
    ("backend", "missing"),
    [("cuda", "nvcc"), ("rocm", "hipconfig"), ("metal", "Apple Silicon"), ("vulkan", "glslc")],
)
def test_forcing_a_backend_whose_tools_are_missing_warns(box: Machine, backend: str, missing: str) -> None:
    plan = box.plan(HEARTH_GPU=backend)
    assert plan.backend == backend
    assert len(plan.notes) == 1
    assert plan.notes[0].startswith("Warning:") and missing in plan.notes[0]
    assert "the CPU build follows" in plan.notes[0]


def test_an_unknown_hearth_gpu_is_refused(box: Machine) -> None:
    with pytest.raises(acc.PlanError, match="HEARTH_GPU=opencl is not one of cuda, rocm, metal, vulkan, cpu"):
        box.plan(HEARTH_GPU="opencl")


def test_the_users_cmake_args_come_last(box: Machine) -> None:
    plan = box.plan(CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=ON")
    assert plan.cmake_args == ["-DGGML_NATIVE=OFF", "-DGGML_NATIVE=ON", "-DGGML_BLAS=ON"]
    assert plan.notes == ["Your CMAKE_ARGS come last, so they win: -DGGML_NATIVE=ON -DGGML_BLAS=ON"]


def test_the_key_changes_with_the_backend_and_its_arguments(box: Machine) -> None:
    keys = {box.plan(HEARTH_GPU=name).key() for name in acc.BACKENDS}
    assert len(keys) == len(acc.BACKENDS)
    assert box.plan().key() == "cpu | -DGGML_NATIVE=OFF"
    assert box.plan(CMAKE_ARGS="-DX=1").key() != box.plan().key()


# -- the shell form, the installed build, the command line ---------------------------------------------


def test_the_shell_form_evaluates_in_bash(box: Machine) -> None:
    box.tool("rocminfo", ROCMINFO)
    box.hipconfig()
    text = box.plan().shell()
    out = subprocess.run(
        ["bash", "-c", 'set -u; eval "$1"; printf "%s\\n" "$HEARTH_BACKEND" "$HEARTH_BACKEND_LABEL" '
         '"$HEARTH_CMAKE_ARGS" "${#HEARTH_BUILD_ENV[@]}" "${HEARTH_BUILD_ENV[0]}" "$HEARTH_SAY"', "-", text],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[:5] == ["rocm", "ROCm (HIP)", "-DGGML_NATIVE=OFF -DGGML_HIP=on -DAMDGPU_TARGETS=gfx1100", "2",
                       "HIPCXX=/opt/rocm/llvm/bin/clang"]  # fmt: skip
    assert out[5].startswith("Found AMD GPU")


def test_the_shell_form_of_an_empty_environment_is_an_empty_array(box: Machine) -> None:
    text = box.plan().shell()
    assert "HEARTH_BUILD_ENV=()" in text
    out = subprocess.run(["bash", "-c", 'set -u; eval "$1"; echo "${HEARTH_BUILD_ENV[@]+x}|"', "-", text],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "|"


def test_the_command_line_prints_the_plan_and_refuses_a_bad_hearth_gpu() -> None:
    script = str(ROOT / "scripts" / "accelerator.py")
    good = subprocess.run([sys.executable, script], capture_output=True, text=True)
    assert good.returncode == 0 and "building llama-cpp-python" in good.stdout
    bad = subprocess.run([sys.executable, script], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HEARTH_GPU": "tpu"})  # fmt: skip
    assert bad.returncode == 2 and "HEARTH_GPU=tpu" in bad.stderr


def test_installed_names_this_venvs_version_and_backend() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+ (cpu|cuda|rocm|metal|vulkan)", acc.installed())
