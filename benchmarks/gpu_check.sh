#!/usr/bin/env bash
# The CUDA paths no CPU test covers, in one run of a few minutes on one GPU:
#   info             GPU, torch, CUDA;
#   sync             the padded forward without host synchronisations under
#                    torch.cuda.set_sync_debug_mode("error"), and packed == padded on the GPU;
#   throughput       bf16 training samples/s of sitsformer_original and sitsformer_pixel
#                    (10 bands, T 50) at batch 128 and 1024;
#   predict-speed    predict_raster pixels/s (original model, bf16) on a generated 2048 x 2048
#                    x 24-date raster, and the projected hours for a 10980 x 10980 x 50 tile;
#   train-step       bf16 and fp32 training steps of the tutorial model (224/16, 13 bands,
#                    8 layers, T 20) at batch 32 and the original configuration (batch 128),
#                    MFU against a matmul peak measured in the same process
#                    (bench_train_step.py --device cuda);
#   fp16             fp16 autocast + GradScaler steps of the tutorial model at batch 32;
#   memory           saved-for-backward bytes and torch.cuda.max_memory_allocated with and
#                    without checkpointing at batch 32, the plans for 8 / 24 GiB
#                    (bench_memory.py --device cuda);
#   torchrun         NCCL init on one GPU: torchrun --nproc_per_node=1 runs a 1-epoch
#                    `sitsformer train` on demo data;
#   predict-compare  `sitsformer predict` on the GPU (bf16, fp32) against the CPU (fp32).
# The Python steps live in gpu_check.py. Every step is time-boxed (its own cap, and the whole
# run within GPU_CHECK_BUDGET seconds, default 420: a step that would start with under 15 s
# left is skipped), prints "PASS <step>" or "FAIL <step>: <reason>", and the run goes on; the
# exit status is 1 when any step failed.
# Usage: bash benchmarks/gpu_check.sh [PYTHON] [--cpu-smoke]   (default: python3 on PATH)
#   GPU_CHECK_BUDGET=S: the whole run's seconds; GPU_CHECK_SKIP="torchrun sync": steps not run.
#   --cpu-smoke: every step tiny on the CPU (no GPU needed), to catch import and syntax errors;
#   its numbers mean nothing. Needs rasterio for the predict steps (benchmarks/gpu_wheels.sh
# downloads it for the GPU machine; benchmarks/README.md has the command line).
set -uo pipefail
PY=python3
SMOKE=()
for arg in "$@"; do
    case $arg in
        --cpu-smoke) SMOKE=(--cpu-smoke) ;;
        *) PY=$arg ;;
    esac
done
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
BUDGET=${GPU_CHECK_BUDGET:-420}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=()

# step NAME CAP COMMAND...: run COMMAND under timeout, output also in $WORK/NAME.log
step() {
    local name=$1 cap=$2
    shift 2
    local left=$((BUDGET - SECONDS))
    echo
    if [[ " ${GPU_CHECK_SKIP:-} " == *" $name "* ]]; then
        echo "SKIP $name (GPU_CHECK_SKIP)"
        return
    fi
    echo "== $name ($(date +%T), cap ${cap} s, ${left} s of the ${BUDGET} s budget left)"
    if ((left < 15)); then
        echo "FAIL $name: skipped, the ${BUDGET} s budget is spent"
        FAILED+=("$name")
        return
    fi
    ((cap > left)) && cap=$left
    local start=$SECONDS rc
    timeout -k 10 "$cap" "$@" 2>&1 | tee "$WORK/$name.log"
    rc=${PIPESTATUS[0]}
    if ((rc == 0)); then
        echo "PASS $name ($((SECONDS - start)) s)"
    else
        local why
        why=$(grep -v '^[[:space:]]*$' "$WORK/$name.log" | tail -n 1 | cut -c1-300)
        ((rc == 124 || rc == 137)) && why="timed out after ${cap} s; last line: $why"
        echo "FAIL $name: exit $rc after $((SECONDS - start)) s: $why"
        FAILED+=("$name")
    fi
}

CHECK=("$PY" benchmarks/gpu_check.py "${SMOKE[@]}" --work "$WORK/py")

echo "gpu_check.sh: $("$PY" --version 2>&1), $(nproc) CPUs, ${SMOKE[*]:-GPU run}"
step info 60 "${CHECK[@]}" info
if [[ ${#SMOKE[@]} -eq 0 ]] && ! grep -q '^info: GPU' "$WORK/info.log"; then
    echo "gpu_check.sh: no CUDA device visible to torch; this script only runs on a GPU machine" \
         "(--cpu-smoke for a dry run)" >&2
    exit 2
fi
step sync 60 "${CHECK[@]}" sync
step throughput 90 "${CHECK[@]}" throughput
step predict-speed 180 "${CHECK[@]}" predict-speed
if [[ ${#SMOKE[@]} -eq 0 ]]; then
    step train-step 150 "$PY" benchmarks/bench_train_step.py --device cuda \
        --configs tutorial,original --dtypes bf16,fp32 --batch-tutorial 32 --steps 10 \
        --warmup 3 --json "$WORK/train.json"
    step memory 120 "$PY" benchmarks/bench_memory.py --device cuda --batch 32 \
        --precisions bf16 --budgets 8,24
else
    step train-step 150 "$PY" benchmarks/bench_train_step.py --device cpu --configs original \
        --dtypes bf16 --batch-original 2 --steps 1 --warmup 1
    step memory 120 "$PY" benchmarks/bench_memory.py --device cpu --variant sitsformer_pixel \
        --batch 2 --precisions bf16 --budgets 8
fi
step fp16 90 "${CHECK[@]}" fp16
step torchrun 120 "${CHECK[@]}" torchrun
step predict-compare 120 "${CHECK[@]}" predict-compare

echo
if ((${#FAILED[@]})); then
    echo "gpu_check.sh: FAILED ${FAILED[*]} (${#FAILED[@]} of the steps) in $SECONDS s"
    exit 1
fi
echo "gpu_check.sh: all steps passed in $SECONDS s"
