#!/usr/bin/env bash
# One command from a fresh clone: set up .venv, then train and evaluate SITS-Former on the embedded,
# GENERATED (synthetic) Sentinel-2-like demo data. Extra arguments go to `sitsformer demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sitsformer demo "$@"
