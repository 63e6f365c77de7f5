#!/usr/bin/env bash
# Set up edgetrust in ./.venv on a fresh machine.  Usage: bash scripts/setup.sh [--dev]
#   --dev   also install the test/lint tools and a PostgreSQL server (for the scale-out store tests)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "error: edgetrust needs Python >= 3.11 (found $("$PY" --version 2>&1))" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip

if [ "${1:-}" = "--dev" ]; then
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  bash scripts/pg.sh install
else
  .venv/bin/python -m pip install --quiet -e .
fi
echo "edgetrust installed in .venv ($(.venv/bin/edgetrust --version))"
