#!/usr/bin/env bash
# Create .venv/ and install Hearth's dependencies into it, once per requirements change.
#   scripts/bootstrap.sh app    runtime dependencies (requirements.txt)
#   scripts/bootstrap.sh dev    runtime + test, lint and benchmark tools, and Chromium
#   add --dry-run to print what would be built and installed, changing nothing
# llama-cpp-python is compiled first, for the GPU scripts/accelerator.py finds (HEARTH_GPU=
# cuda|rocm|metal|vulkan|cpu forces one), once per choice: see scripts/install_llama.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=app
dry_run=""
for arg; do  # every argument
  case "$arg" in
    app | dev) profile=$arg ;;
    --dry-run) dry_run=--dry-run ;;
    *)
      echo "usage: scripts/bootstrap.sh [app|dev] [--dry-run]" >&2
      exit 2
      ;;
  esac
done
python="${PYTHON:-python3}"
file=requirements.txt
[ "$profile" = dev ] && file=requirements-dev.txt

if [ ! -x .venv/bin/python ] && [ -n "$dry_run" ]; then
  echo "==> Would create the virtual environment in .venv/ with $python"
elif [ ! -x .venv/bin/python ]; then
  echo "==> Creating the virtual environment in .venv/"
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi

PYTHON="$python" scripts/install_llama.sh $dry_run

# Reinstall only when a requirements file changes; llama-cpp-python is already installed,
# so pip leaves it as scripts/install_llama.sh built it.
digest=$(cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
stamp=".venv/.installed-$profile-$digest"
if [ ! -f "$stamp" ]; then
  echo "==> Installing dependencies ($profile) from $file"
  if [ -n "$dry_run" ]; then
    echo "    would run: .venv/bin/python -m pip install --quiet -r $file"
    exit 0
  fi
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$file"
  rm -f .venv/.installed-"$profile"-*
  touch "$stamp"
fi

if [ -n "$dry_run" ]; then
  exit 0
fi
if [ "$profile" = dev ] && [ ! -x /usr/bin/chromium ]; then
  echo "==> Installing Chromium for the browser tests"
  sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
