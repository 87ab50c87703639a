#!/usr/bin/env bash
# Creates .venv (once) and installs sitsformer with its test dependencies into it.
# The CPU build of PyTorch is installed first so that pip does not pull a multi-GB CUDA build;
# set SITSFORMER_TORCH="torch==X.Y.Z" (or "skip") to choose another build yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
VPY=.venv/bin/python
TORCH_SPEC=${SITSFORMER_TORCH:-torch==2.13.0}
if ! "$VPY" -c "import torch" >/dev/null 2>&1 && [ "$TORCH_SPEC" != "skip" ]; then
    "$VPY" -m pip install -q --disable-pip-version-check "$TORCH_SPEC" 2>&1 | grep -v "is ignored" || true
    "$VPY" -c "import torch" # fail loudly if the torch install did not work
fi
"$VPY" -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "is ignored" || true
"$VPY" -c "import sitsformer, rasterio, zarr, optuna, torchmetrics" # fail loudly on a broken install
