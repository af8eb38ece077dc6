#!/usr/bin/env bash
# Create .venv/ and install Hearth's dependencies into it, once per requirements change.
#   scripts/bootstrap.sh app    runtime dependencies (requirements.txt)
#   scripts/bootstrap.sh dev    runtime + test, lint and benchmark tools, and Chromium
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-app}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  echo "==> Creating the virtual environment in .venv/"
  "$python" -m venv .venv
fi

# Reinstall only when a requirements file changes.
digest=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
stamp=".venv/.installed-$profile-$digest"
if [ ! -f "$stamp" ]; then
  echo "==> Installing dependencies ($profile). The first time, llama-cpp-python compiles"
  echo "    from source, which takes about 12-15 minutes on two cores."
  .venv/bin/python -m pip install --quiet --upgrade pip
  file=requirements.txt
  [ "$profile" = dev ] && file=requirements-dev.txt
  # -DGGML_NATIVE=OFF: a -march=native build dies with SIGILL on CPUs that advertise
  # AMX without granting it. requirements.txt passes the same flag per package.
  CMAKE_ARGS="-DGGML_NATIVE=OFF" .venv/bin/python -m pip install --quiet -r "$file"
  rm -f .venv/.installed-"$profile"-*
  touch "$stamp"
fi

if [ "$profile" = dev ] && [ ! -x /usr/bin/chromium ]; then
  echo "==> Installing Chromium for the browser tests"
  sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
