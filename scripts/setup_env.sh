#!/usr/bin/env bash
# Create .venv (Python 3.11), install the pinned requirements file given as $1, then the project
# itself (editable: `brain-mri` on the venv's PATH, and the shipped model in models/ found in place).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUIREMENTS="${1:-requirements.txt}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r "$REQUIREMENTS"
.venv/bin/python -m pip install --quiet --no-deps -e .
