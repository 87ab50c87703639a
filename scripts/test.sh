#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, then run the whole test suite (slow tests included).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow" -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
unset PYTHONDONTWRITEBYTECODE  # subprocess-heavy tests: reuse cached bytecode
exec .venv/bin/python -m pytest "$@"
