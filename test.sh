#!/usr/bin/env bash
# Install what is missing (the venv, test tools, Chromium), then run every check:
# ruff, mypy and the whole pytest suite, browser and bundled-model tests included.
# Extra arguments go to pytest, e.g. ./test.sh -k store
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh dev
echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/python -m pytest "$@"
