#!/usr/bin/env bash
# Set up .venv and launch the app with the shipped model on http://localhost:8501.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh requirements.txt
exec .venv/bin/brain-mri app "$@"
