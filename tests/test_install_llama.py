"""scripts/install_llama.sh and scripts/compile_progress.py, without compiling anything.

The install script runs for real in a copy of the scripts, against a fake `.venv/bin/python`
whose `-m pip install` prints ninja-style counters and "builds" whatever backend
CMAKE_ARGS asks for (or fails a GPU build when told to).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_accelerator import load_script

ROOT = Path(__file__).resolve().parent.parent
progress = load_script("compile_progress")

FAKE_PYTHON = r"""#!/bin/sh
# A stand-in venv Python: "installed" reads, "-m pip" builds, "offload" answers.
here=$(dirname "$0")/..
case "$1" in
  -m)
    echo "$* | CMAKE_ARGS=$CMAKE_ARGS | CACHE=${PIP_CACHE_DIR:-} | CUDACXX=${CUDACXX:-}" >>"$here/pip-calls"
    echo "Building wheel for llama-cpp-python (pyproject.toml)"
    echo "  [1/2] Building C object vendor/llama.cpp/ggml.c.o"
    case "$CMAKE_ARGS" in
      *GGML_CUDA=on*) backend=cuda ;;
      *GGML_HIP=on*) backend=rocm ;;
      *GGML_VULKAN=on*) backend=vulkan ;;
      *GGML_METAL=on*) backend=metal ;;
      *) backend=cpu ;;
    esac
    if [ "$backend" != cpu ] && [ -n "${FAKE_FAIL_GPU:-}" ]; then
      echo "CMake Error: could not find the $backend toolkit"
      exit 1
    fi
    echo "  [2/2] Linking CXX shared library libllama.so"
    echo "$backend" >"$here/built"
    ;;
  scripts/accelerator.py)
    case "$2" in
      installed) if [ -f "$here/built" ]; then echo "0.3.36 $(cat "$here/built")"; else echo none; fi ;;
      offload)
        echo "    GPU offload: fake answer for $(cat "$here/built")"
        exit "${FAKE_OFFLOAD_STATUS:-0}"
        ;;
    esac
    ;;
esac
"""


class Repo:
    """A copy of the install scripts with a fake venv, run with a controlled environment."""

    def __init__(self, tmp: Path, installed: str | None = None) -> None:
        self.root = tmp / "repo"
        (self.root / "scripts").mkdir(parents=True)
        for name in ("bootstrap.sh", "install_llama.sh", "accelerator.py", "compile_progress.py"):
            shutil.copy2(ROOT / "scripts" / name, self.root / "scripts" / name)
        (self.root / "requirements.txt").write_text(
            "llama-cpp-python==0.3.36 --config-settings=cmake.args=-DGGML_NATIVE=OFF\ngradio==6.31.0\n"
        )
        venv_bin = self.root / ".venv" / "bin"
        venv_bin.mkdir(parents=True)
        (venv_bin / "python").write_text(FAKE_PYTHON)
        (venv_bin / "python").chmod(0o755)
        if installed:
            (self.root / ".venv" / "built").write_text(installed + "\n")
        self.env = {
            "PATH": "/usr/bin:/bin",  # not /usr/local/bin, where a CUDA toolkit may live
            "CUDA_HOME": str(tmp / "no-cuda"),
            "ROCM_PATH": str(tmp / "no-rocm"),
            "PYTHON": sys.executable,
            "XDG_CACHE_HOME": str(tmp / "cache"),
        }

    def run(self, *args: str, **env: str) -> str:
        done = subprocess.run(
            ["bash", "scripts/install_llama.sh", *args], cwd=self.root, env={**self.env, **env},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    @property
    def pip_calls(self) -> list[str]:
        calls = self.root / ".venv" / "pip-calls"
        return calls.read_text().splitlines() if calls.exists() else []

    @property
    def stamp(self) -> list[str]:
        return (self.root / ".venv" / ".llama-build").read_text().splitlines()

    @property
    def built(self) -> str:
        return (self.root / ".venv" / "built").read_text().strip()


CPU_KEY = "llama-cpp-python 0.3.36 | cpu | -DGGML_NATIVE=OFF"
CUDA_KEY = "llama-cpp-python 0.3.36 | cuda | -DGGML_NATIVE=OFF -DGGML_CUDA=on"


def test_a_fresh_venv_builds_with_dependencies_and_shows_progress(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    out = repo.run(HEARTH_GPU="cpu")
    assert "HEARTH_GPU=cpu: building llama-cpp-python for the CPU as asked" in out
    assert "compiling llama.cpp (the CPU)… [1/2]" in out
    assert "compiling llama.cpp (the CPU)… [2/2]" in out
    assert "GPU offload: fake answer for cpu" in out
    [call] = repo.pip_calls
    assert call.startswith("-m pip install -v --no-binary llama-cpp-python llama-cpp-python==0.3.36")
    assert "--no-deps" not in call  # a fresh venv needs llama-cpp-python's own dependencies
    assert "CMAKE_ARGS=-DGGML_NATIVE=OFF | CACHE= |" in call  # pip's own wheel cache
    assert repo.stamp == [CPU_KEY, CPU_KEY]
    assert "[2/2] Linking" in (repo.root / ".venv" / "llama-build.log").read_text()


def test_an_unchanged_plan_does_nothing_and_says_nothing(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    repo.run(HEARTH_GPU="cpu")
    assert repo.run(HEARTH_GPU="cpu") == ""
    assert repo.run() == ""  # detection finds no GPU: the same plan
    assert len(repo.pip_calls) == 1


def test_a_venv_from_before_the_stamp_keeps_a_matching_build(tmp_path: Path) -> None:
    repo = Repo(tmp_path, installed="cpu")
    out = repo.run()
    assert "already built for the CPU: nothing to compile" in out
    assert repo.pip_calls == []
    assert repo.stamp == [CPU_KEY, CPU_KEY]


def test_changing_hearth_gpu_rebuilds_in_place(tmp_path: Path) -> None:
    repo = Repo(tmp_path, installed="cpu")
    repo.run()
    out = repo.run(HEARTH_GPU="cuda")
    assert "HEARTH_GPU=cuda: building llama-cpp-python with CUDA as asked" in out
    assert "Built llama-cpp-python 0.3.36 for CUDA." in out
    [call] = repo.pip_calls
    assert "--force-reinstall --no-deps" in call
    assert "CMAKE_ARGS=-DGGML_NATIVE=OFF -DGGML_CUDA=on |" in call
    assert f"CACHE={tmp_path / 'cache' / 'hearth' / 'llama-wheels-'}" in call  # CUDA wheels apart
    assert repo.built == "cuda"
    assert repo.stamp == [CUDA_KEY, CUDA_KEY]
    repo.run(HEARTH_GPU="cpu")
    assert repo.built == "cpu" and len(repo.pip_calls) == 2


def test_a_gpu_build_that_still_loads_is_kept_when_no_gpu_is_found(tmp_path: Path) -> None:
    repo = Repo(tmp_path, installed="cpu")
    repo.run(HEARTH_GPU="cuda")
    out = repo.run(FAKE_OFFLOAD_STATUS="1")  # detection finds no GPU; the build loads
    assert "built for cuda and still loads" in out
    assert repo.built == "cuda" and len(repo.pip_calls) == 1
    repo.run(FAKE_OFFLOAD_STATUS="2")  # the build no longer loads: rebuild for the CPU
    assert repo.built == "cpu" and len(repo.pip_calls) == 2


def test_hearth_gpu_cpu_rebuilds_a_gpu_build(tmp_path: Path) -> None:
    repo = Repo(tmp_path, installed="cuda")
    repo.run(HEARTH_GPU="cpu")
    assert repo.built == "cpu"


def test_the_plans_environment_reaches_the_build(tmp_path: Path) -> None:
    repo = Repo(tmp_path, installed="cpu")
    cuda_bin = tmp_path / "cuda" / "bin"
    cuda_bin.mkdir(parents=True)
    (cuda_bin / "nvcc").write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.4, V12.4.1'\n")
    (cuda_bin / "nvcc").chmod(0o755)
    repo.run(HEARTH_GPU="cuda", CUDA_HOME=str(tmp_path / "cuda"))
    assert repo.pip_calls[0].endswith(f"CUDACXX={cuda_bin / 'nvcc'}")


def test_a_failed_gpu_build_keeps_the_cpu_build_and_is_not_retried(tmp_path: Path) -> None:
    repo = Repo(tmp_path, installed="cpu")
    out = repo.run(HEARTH_GPU="cuda", FAKE_FAIL_GPU="1")
    assert "The CUDA build of llama-cpp-python failed. The end of .venv/llama-build.log:" in out
    assert "| CMake Error: could not find the cuda toolkit" in out
    assert "Keeping the CPU build of llama-cpp-python 0.3.36 that is already installed." in out
    assert "Hearth runs on the CPU" in out
    assert repo.built == "cpu"
    assert repo.stamp == [CUDA_KEY, CPU_KEY]
    again = repo.run(HEARTH_GPU="cuda", FAKE_FAIL_GPU="1")
    assert "The last CUDA build failed" in again
    assert len(repo.pip_calls) == 1
    assert repo.run() == ""  # the CPU plan matches what was built


def test_a_failed_gpu_build_in_a_fresh_venv_builds_for_the_cpu(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    out = repo.run(HEARTH_GPU="vulkan", FAKE_FAIL_GPU="1")
    assert "Building for the CPU instead, so Hearth still runs." in out
    assert "compiling llama.cpp (the CPU)… [2/2]" in out
    gpu, cpu = repo.pip_calls
    assert "-DGGML_VULKAN=on" in gpu and "CMAKE_ARGS=-DGGML_NATIVE=OFF | CACHE= |" in cpu
    assert repo.built == "cpu"
    log = (repo.root / ".venv" / "llama-build.log").read_text()
    assert "vulkan toolkit" in log and "Linking" in log  # both attempts stay in the log


def test_a_local_sdist_replaces_pypi(tmp_path: Path) -> None:
    repo = Repo(tmp_path, installed="cpu")
    sdist = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    sdist.write_bytes(b"")
    out = repo.run(HEARTH_GPU="cuda", HEARTH_LLAMA_SDIST=str(sdist))
    assert f"from {sdist}" in out
    assert f" {sdist} |" in repo.pip_calls[0]


def test_a_missing_sdist_is_refused(tmp_path: Path) -> None:
    repo = Repo(tmp_path, installed="cpu")
    done = subprocess.run(["bash", "scripts/install_llama.sh"], cwd=repo.root, capture_output=True, text=True,
                          env={**repo.env, "HEARTH_LLAMA_SDIST": "llama.tar.gz"})  # fmt: skip
    assert done.returncode == 1
    assert "HEARTH_LLAMA_SDIST=llama.tar.gz is not a file" in done.stderr


def test_a_dry_run_prints_the_command_and_changes_nothing(tmp_path: Path) -> None:
    repo = Repo(tmp_path, installed="cpu")
    out = repo.run("--dry-run", HEARTH_GPU="cuda", CMAKE_ARGS="-DGGML_CUDA_FA_ALL_QUANTS=on")
    assert "Your CMAKE_ARGS come last, so they win: -DGGML_CUDA_FA_ALL_QUANTS=on" in out
    assert "installed now: 0.3.36 cpu; last build: none" in out
    assert f"would run: PIP_CACHE_DIR={tmp_path / 'cache' / 'hearth' / 'llama-wheels-'}" in out
    assert (
        " CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_CUDA=on -DGGML_CUDA_FA_ALL_QUANTS=on' "
        ".venv/bin/python -m pip install -v --no-binary llama-cpp-python "
        "--force-reinstall --no-deps llama-cpp-python==0.3.36"
    ) in out
    assert repo.pip_calls == []
    assert not (repo.root / ".venv" / ".llama-build").exists()


def test_bootstrap_dry_run_on_a_fresh_clone_plans_everything_and_creates_nothing(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    shutil.rmtree(repo.root / ".venv")
    (repo.root / "requirements-dev.txt").write_text("-r requirements.txt\n")
    done = subprocess.run(["bash", "scripts/bootstrap.sh", "dev", "--dry-run"], cwd=repo.root, env=repo.env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"==> Would create the virtual environment in .venv/ with {sys.executable}"
    assert lines[1].startswith("==> No GPU found")
    assert "installed now: none; last build: none" in done.stdout
    assert "would run: CMAKE_ARGS='-DGGML_NATIVE=OFF' .venv/bin/python -m pip install -v" in done.stdout
    assert lines[-1] == "    would run: .venv/bin/python -m pip install --quiet -r requirements-dev.txt"
    assert not (repo.root / ".venv").exists()


# -- the progress filter -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_shows_the_counter_at_most_every_period() -> None:
    said: list[str] = []
    clock = Clock()
    shown = progress.Progress("llama.cpp (CUDA)", said.append, clock)
    shown.line("Collecting llama-cpp-python==0.3.36\n")
    for n in range(1, 5):
        clock.now += 4
        shown.line(f"  [{n}/5] Building CUDA object ggml-cuda/x{n}.cu.o\n")
    clock.now += 1
    shown.line("[5/5] Linking CXX shared library libggml-cuda.so\n")
    assert said == [
        "    compiling llama.cpp (CUDA)… [1/5] 4s",
        "    compiling llama.cpp (CUDA)… [4/5] 16s",
        "    compiling llama.cpp (CUDA)… [5/5] 17s",
    ]


def test_progress_beats_while_nothing_counts() -> None:
    said: list[str] = []
    clock = Clock()
    shown = progress.Progress("llama.cpp", said.append, clock)
    clock.now += 29
    shown.tick()
    clock.now += 1
    shown.tick()
    shown.line("[7/193] Building C object ggml.c.o\n")
    clock.now += 155
    shown.tick()
    assert said == [
        "    still working… 30s",
        "    compiling llama.cpp… [7/193] 30s",
        "    still working (at [7/193])… 3m05s",
    ]


def test_follow_copies_every_line_to_the_log() -> None:
    said: list[str] = []
    log = io.StringIO()
    lines = ["a\n", "  [1/1] Linking\n", "done\n"]
    progress.follow(iter(lines), log, progress.Progress("x", said.append), wait=0.01)
    assert log.getvalue() == "".join(lines)
    assert len(said) == 1 and said[0].startswith("    compiling x… [1/1]")


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (754, "12m34s")])
def test_elapsed_reads_as_minutes_and_seconds(seconds: float, text: str) -> None:
    assert progress.elapsed(seconds) == text
