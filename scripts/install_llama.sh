#!/usr/bin/env bash
# Build llama-cpp-python into .venv/ for this machine's GPU, once per choice of backend.
#   scripts/install_llama.sh             build when the plan differs from the last build's
#   scripts/install_llama.sh --dry-run   print the plan and the pip command; change nothing
# scripts/accelerator.py picks the backend and says why; HEARTH_GPU=cuda|rocm|metal|vulkan|cpu
# forces one. HEARTH_LLAMA_SDIST=path/to/llama_cpp_python-X.tar.gz builds from that file
# instead of downloading from PyPI (pip's own PIP_NO_INDEX / PIP_FIND_LINKS work as usual).
# A failed GPU build falls back to the CPU. scripts/bootstrap.sh calls this; POSIX bash 3.2.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv_python=.venv/bin/python
stamp=.venv/.llama-build
log=.venv/llama-build.log
dry_run=0
[ "${1:-}" = --dry-run ] && dry_run=1

requirement=$(grep -m1 -E '^llama-cpp-python==' requirements.txt | cut -d' ' -f1)
version=${requirement#llama-cpp-python==}
source_spec=$requirement
from="PyPI"
if [ -n "${HEARTH_LLAMA_SDIST:-}" ]; then
  if [ ! -f "$HEARTH_LLAMA_SDIST" ]; then
    echo "==> HEARTH_LLAMA_SDIST=$HEARTH_LLAMA_SDIST is not a file (from $PWD; give an absolute path)." >&2
    exit 1
  fi
  source_spec=$HEARTH_LLAMA_SDIST
  from=$HEARTH_LLAMA_SDIST
fi

plan=$("$python" scripts/accelerator.py --shell) || exit 1
eval "$plan"
key="llama-cpp-python $version | $HEARTH_PLAN_KEY"

installed="none"
if [ -x "$venv_python" ]; then
  installed=$("$venv_python" scripts/accelerator.py installed)
elif [ "$dry_run" = 0 ]; then
  echo "==> There is no .venv/ yet: run scripts/bootstrap.sh, which creates it and calls this." >&2
  exit 1
fi

say_offload() {
  "$venv_python" scripts/accelerator.py offload || true
}

# The stamp's first line is the plan last asked for, its second the plan actually built
# (they differ after a GPU build failed and the CPU build stood in).
asked=""
built=""
if [ -f "$stamp" ]; then
  asked=$(sed -n 1p "$stamp")
  built=$(sed -n 2p "$stamp")
fi
write_stamp() {  # write_stamp BUILT-KEY
  [ "$dry_run" = 1 ] || printf '%s\n%s\n' "$key" "$1" >"$stamp"
}

if [ "$installed" != none ] && [ "$built" = "$key" ]; then  # nothing to do: say nothing
  [ "$asked" = "$key" ] || write_stamp "$key"
  if [ "$dry_run" = 1 ]; then
    echo "==> $HEARTH_SAY"
    echo "    llama-cpp-python $version is built for this plan already: nothing to compile."
  fi
  exit 0
fi
# A GPU build that still loads runs on the CPU as well: a GPU that detection misses one day
# (a driver updated but not yet loaded) must not cost a rebuild. HEARTH_GPU=cpu forces one.
if [ "$HEARTH_BACKEND" = cpu ] && [ "$HEARTH_FORCED" = 0 ] && [ "${installed% *}" = "$version" ] &&
  [ "${installed#* }" != cpu ]; then
  loads=0
  "$venv_python" scripts/accelerator.py offload >/dev/null || loads=$?
  if [ "$loads" != 2 ]; then
    echo "==> No GPU found now, but llama-cpp-python is built for ${installed#* } and still loads:"
    echo "    keeping it (it runs on the CPU too). HEARTH_GPU=cpu rebuilds it for the CPU."
    exit 0
  fi
fi
echo "==> $HEARTH_SAY"
if [ "$installed" != none ] && [ "$asked" = "$key" ]; then
  echo "    The last $HEARTH_BACKEND_LABEL build failed, so llama-cpp-python runs on the CPU"
  echo "    (see $log). Delete $stamp to try $HEARTH_BACKEND_LABEL again."
  exit 0
fi
# A venv from before this script has no stamp: keep a build that already matches the plan.
if [ -z "$asked" ] && [ "$installed" = "$version $HEARTH_BACKEND" ]; then
  echo "    llama-cpp-python $version is already built for $HEARTH_BACKEND_LABEL: nothing to compile."
  write_stamp "$key"
  [ "$dry_run" = 1 ] || say_offload
  exit 0
fi

# Its own pip call, so these CMAKE_ARGS reach llama-cpp-python alone; scikit-build-core
# appends CMAKE_ARGS after any cmake.args config setting, so they win either way.
# A reinstall keeps the old build until the new one is ready.
pip_flags="-v --no-binary llama-cpp-python"
[ "$installed" != none ] && pip_flags="$pip_flags --force-reinstall --no-deps"

# pip's wheel cache keys on the download's address, not on CMAKE_ARGS, so a wheel built for
# one backend would come back for another. A plain CPU build keeps pip's own cache (so a
# fresh clone reuses the wheel an earlier one built); every other plan gets a cache of its own.
cache_for() {  # cache_for BACKEND PLAN-KEY
  if [ "$1" != cpu ] || [ -n "${CMAKE_ARGS:-}" ]; then
    echo "${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/hearth/llama-wheels-$(printf '%s' "$2" | cksum | cut -d' ' -f1)"
  fi
}

build() {  # build LABEL CMAKE-ARGS PIP-CACHE [NAME=VALUE ...]
  local label=$1 args=$2 cache=$3
  shift 3
  [ -z "$cache" ] || set -- ${1+"$@"} "PIP_CACHE_DIR=$cache"
  echo "==> Compiling llama-cpp-python $version for $label, from $from."
  echo "    This takes 10-15 minutes on two cores (GPU builds longer); the full log is $log."
  # shellcheck disable=SC2086  # pip_flags is a list of plain words
  env ${1+"$@"} CMAKE_ARGS="$args" "$venv_python" -m pip install $pip_flags "$source_spec" 2>&1 |
    "$python" scripts/compile_progress.py "$log" "llama.cpp ($label)"
}

cache=$(cache_for "$HEARTH_BACKEND" "$key")
if [ "$dry_run" = 1 ]; then
  echo "    installed now: $installed; last build: $([ -f "$stamp" ] && sed -n 1p "$stamp" || echo none)"
  command="CMAKE_ARGS='$HEARTH_CMAKE_ARGS' $venv_python -m pip install $pip_flags $source_spec"
  echo "    would run: ${HEARTH_BUILD_ENV[*]+${HEARTH_BUILD_ENV[*]} }${cache:+PIP_CACHE_DIR=$cache }$command"
  exit 0
fi

: >"$log"
if build "$HEARTH_BACKEND_LABEL" "$HEARTH_CMAKE_ARGS" "$cache" ${HEARTH_BUILD_ENV[@]+"${HEARTH_BUILD_ENV[@]}"}; then
  write_stamp "$key"
  echo "==> Built llama-cpp-python $version for $HEARTH_BACKEND_LABEL."
  say_offload
  exit 0
fi

echo "==> The $HEARTH_BACKEND_LABEL build of llama-cpp-python failed. The end of $log:"
tail -n 25 "$log" | sed 's/^/    | /'
[ "$HEARTH_BACKEND" = cpu ] && exit 1

cpu_plan=$(HEARTH_GPU=cpu "$python" scripts/accelerator.py --shell) || exit 1
eval "$cpu_plan"
cpu_key="llama-cpp-python $version | $HEARTH_PLAN_KEY"
if [ "$("$venv_python" scripts/accelerator.py installed)" = "$version cpu" ]; then
  echo "==> Keeping the CPU build of llama-cpp-python $version that is already installed."
else
  echo "==> Building for the CPU instead, so Hearth still runs."
  if ! build "the CPU" "$HEARTH_CMAKE_ARGS" "$(cache_for cpu "$cpu_key")"; then
    echo "==> The CPU build failed too. The end of $log:"
    tail -n 25 "$log" | sed 's/^/    | /'
    exit 1
  fi
fi
write_stamp "$cpu_key"
echo "    Hearth runs on the CPU. Fix the cause above, then delete $stamp to try the GPU again."
say_offload
