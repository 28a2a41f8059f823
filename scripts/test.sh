#!/usr/bin/env bash
# Runs the test suite in the project's virtual environment (set it up first: scripts/setup.sh test).
# Usage: scripts/test.sh [pytest arguments, e.g. tests/test_stream.py -k name]   (default: the whole suite)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 0 ] && set -- tests
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
