#!/usr/bin/env bash
# Creates .venv (once) and installs sitsformer with its test dependencies into it.
# The CPU build of PyTorch is installed first (together with numpy, which torch looks for when
# it is imported) so that pip does not pull a multi-GB CUDA build; set
# SITSFORMER_TORCH="torch==X.Y.Z" (or "skip") to choose another build yourself.
# A stamp in .venv records what was installed (a hash of pyproject.toml, the torch spec and the
# Python version): when nothing changed, the install is skipped. SITSFORMER_REINSTALL=1 forces it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${SITSFORMER_TORCH:-torch==2.13.0}
EXTRAS=${SITSFORMER_EXTRAS:-test,postgres,wandb}
VPY=.venv/bin/python
STAMP=.venv/.sitsformer-setup-stamp

if [ ! -x "$VPY" ]; then
    echo "setup: creating .venv with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv .venv
fi
want=$( { cat pyproject.toml; echo "torch=$TORCH_SPEC extras=$EXTRAS"; "$VPY" --version; } \
        | sha256sum | cut -d' ' -f1)
if [ "${SITSFORMER_REINSTALL:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
        && "$VPY" -c "import sitsformer" >/dev/null 2>&1; then
    echo "setup: .venv is up to date (pyproject.toml and torch spec unchanged); skipping pip"
    exit 0
fi
rm -f "$STAMP"

# pip's own progress lines, without the hundreds of "Requirement already satisfied" ones
pip_install() {
    set +e
    "$VPY" -m pip install --disable-pip-version-check --progress-bar on "$@" 2>&1 \
        | grep --line-buffered -v -e "is ignored" -e "^Requirement already satisfied"
    local rc=${PIPESTATUS[0]}
    set -e
    return "$rc"
}
if [ "$TORCH_SPEC" != "skip" ] && ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    echo "setup: [1/2] installing $TORCH_SPEC (with numpy)"
    pip_install "$TORCH_SPEC" numpy
    "$VPY" -c "import torch" # fail loudly if the torch install did not work
else
    echo "setup: [1/2] torch already installed ($("$VPY" -c "import torch; print(torch.__version__)" 2>/dev/null || echo skipped))"
fi
echo "setup: [2/2] installing sitsformer (editable) with extras [$EXTRAS]"
pip_install -e ".[$EXTRAS]"
"$VPY" -c "import sitsformer, rasterio, zarr, optuna, torchmetrics" # fail loudly on a broken install
echo "$want" > "$STAMP"
echo "setup: done"
