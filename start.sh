#!/usr/bin/env bash
# Install what is missing, then start Hearth with the bundled model at http://127.0.0.1:7860.
# Any flag is passed on to app.py: ./start.sh --help lists them.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh app
exec .venv/bin/python app.py "$@"
