#!/usr/bin/env bash
# Set up .venv with the test tools and run the whole test suite.
# The browser tests need Chromium at /usr/bin/chromium and the PDF tests poppler-utils (pdftoppm):
# installed here when running as root with apt-get available, otherwise those tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
if { [ ! -x /usr/bin/chromium ] || ! command -v pdftoppm >/dev/null; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq chromium poppler-utils >/dev/null) \
        || echo "Could not install chromium and poppler-utils; browser and PDF tests will skip."
fi
bash scripts/setup_env.sh requirements-dev.txt
export TF_CPP_MIN_LOG_LEVEL=2
# Two pytest workers (pytest-xdist), each test file on one worker: on 2 cores the suite takes about two thirds of
# its serial time. BRAIN_MRI_TEST_WORKERS=0 runs it in one process.
workers="${BRAIN_MRI_TEST_WORKERS:-2}"
if [ "$workers" = 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
