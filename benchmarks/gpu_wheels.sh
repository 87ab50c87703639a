#!/usr/bin/env bash
# Download the wheels benchmarks/gpu_check.sh needs that the GPU machine lacks, for Python 3.12
# on manylinux x86-64, into benchmarks/.wheels/ (ignored by git; carried to the GPU machine by
# the run tool, which reaches no package registry: see benchmarks/README.md, "On the GPU
# machine"). The machine has torch, numpy, pandas, matplotlib, scipy, tensorboard, einops, tqdm,
# pyyaml, onnx and onnxruntime; of the rest only `predict` (rasterio, GDAL inside its wheel) and
# its pure-Python dependencies are needed, and LightGBM for the gradient-boosting baseline of
# benchmarks/bench_accuracy_all.sh (its wheel needs the system's libgomp.so.1; without it the
# benchmark reports that baseline as skipped). --no-deps: exactly this list, nothing pulled in.
# Usage: bash benchmarks/gpu_wheels.sh [PYTHON]   (a Python with pip; default python3)
# Prints the folder's size; fails when it is over 45 MiB (the run tool carries 64 MiB in all).
set -euo pipefail
PY=${1:-python3}
cd "$(dirname "$0")/.."
DEST=benchmarks/.wheels
WHEELS=(rasterio affine attrs certifi click cligj click-plugins pyparsing lightgbm)
rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" -m pip download --quiet --disable-pip-version-check --dest "$DEST" --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform any \
    --no-deps "${WHEELS[@]}"
ls -1 "$DEST"
kib=$(du -sk "$DEST" | cut -f1)
echo "gpu_wheels.sh: ${#WHEELS[@]} wheels, $((kib / 1024)) MiB ($kib KiB) in $DEST"
if ((kib > 45 * 1024)); then
    echo "gpu_wheels.sh: over 45 MiB" >&2
    exit 1
fi
