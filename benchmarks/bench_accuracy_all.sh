#!/usr/bin/env bash
# `sitsformer benchmark` on all five labelled sets of the shared data at once, within one
# wall-clock cap, for a GPU machine (issue 31): the default protocol (auto: 5 x 2 (grouped)
# cross-validation on sets of at most 3000 samples, a fixed split with seeds 0, 1, 2 above or
# where the split is given), the default deep models (sitsformer recipe, TempCNN, L-TAE) and
# both baselines (random forest, LightGBM), device auto (CUDA when torch sees one).
#
# Usage: bash benchmarks/bench_accuracy_all.sh DATA_ROOT OUTDIR [options] [-- BENCHMARK ARGS]
#   DATA_ROOT    the shared data folder (s2_victoria_igarss2019/, landsat8_rondonia/,
#                formosat2_ucr_crop/, s2_slovenia_eopatch/raw/example_data/TestEOPatch ...)
#   OUTDIR       OUTDIR/<set>/benchmark.md|json|csv|png: the table of each set;
#                OUTDIR/<set>/parts/<part>/: one benchmark per part (--resume), its log beside it;
#                OUTDIR/summary.md: every set's table, printed at the end
#   --cap S      wall-clock cap of the whole script in seconds (default 280): every benchmark
#                process gets SIGTERM at S - 25 s and writes the table of the runs it finished
#                (timeout -k 15 kills what is left), then the parts are merged
#   --quick      5 folds x 1 repeat on the cross-validated sets instead of 5 x 2 (the fixed
#                sets keep their 3 seeds): what fits a ~300 s GPU slot (benchmarks/README.md)
#   --per-set    one process per set (all models and baselines in it, OMP_NUM_THREADS=3) instead
#                of one process per set and model (sitsformer | tempcnn | ltae | baselines,
#                OMP_NUM_THREADS=1 for the deep models, 2 for the baselines; the recipe one
#                process per seed on formosat2_crop and slovenia_pixels, and without --quick
#                every deep model one per repeat on rondonia: 24 processes, 27 without --quick),
#                each part's rows joined into the set's table (merge_benchmarks)
#   --jobs N     at most N benchmark processes at a time (default: all at once)
#   --sets A,B   a subset of victoria_upstream,victoria_group,rondonia,formosat2_crop,
#                slovenia_pixels (default all five)
#   --python PY  the interpreter (default: python3 if it imports torch, else python)
#   --cpu-smoke  tiny budgets on the CPU (1 epoch, 1 update minimum, no ensemble, 2 folds x 1
#                repeat, 1 seed, 10 trees, 5 rounds), at most 2 processes at a time, with dask,
#                zarr, optuna, pyproj ... blocked (as absent on the GPU machine): proves the run
#                end to end; its numbers mean nothing
#   -- ARGS      passed to every `sitsformer benchmark` (e.g. -- --seeds 1 train.precision=bf16)
# sitsformer is not installed there: src/ goes on PYTHONPATH (before what is already on it, e.g.
# the folder the rasterio and lightgbm wheels were installed into).
set -uo pipefail

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
if (($# < 2)) || [[ $1 == -* ]] || [[ $2 == -* ]]; then
    usage >&2
    exit 2
fi
DATA_ROOT=$(cd "$1" 2>/dev/null && pwd) || { echo "bench_accuracy_all.sh: no folder $1" >&2; exit 2; }
OUTDIR=$2
shift 2
CAP=280 QUICK=0 PER_SET=0 JOBS=0 SMOKE=0 PY="" EXTRA=()
SETS=victoria_upstream,victoria_group,rondonia,formosat2_crop,slovenia_pixels
while (($#)); do
    case $1 in
        --cap) CAP=$2; shift ;;
        --quick) QUICK=1 ;;
        --per-set) PER_SET=1 ;;
        --jobs) JOBS=$2; shift ;;
        --sets) SETS=$2; shift ;;
        --python) PY=$2; shift ;;
        --cpu-smoke) SMOKE=1 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "bench_accuracy_all.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)  # before the cd below: relative to where the script was called
cd "$(dirname "$0")/.."
REPO=$PWD
if [[ -z $PY ]]; then
    PY=python3
    $PY -c 'import torch' 2>/dev/null || PY=python
fi
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export SITSFORMER_SHARED_DATA=$DATA_ROOT

ARGS=(--quiet --resume)
SET_OVERRIDES=()
if ((SMOKE)); then
    # what the GPU machine lacks (tests/test_architecture.py GIS_AND_CLUSTER, rasterio and
    # lightgbm excepted: their wheels are carried there) raises ImportError when imported
    BLOCK=$(mktemp -d)
    trap 'rm -rf "$BLOCK"' EXIT
    cat > "$BLOCK/sitecustomize.py" <<'EOF'
import sys
BLOCKED = ["dask", "distributed", "zarr", "numcodecs", "optuna", "pyproj", "pyogrio",
           "shapely", "odc", "pystac", "rioxarray"]
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked (absent on the GPU machine)", name=name)
sys.meta_path.insert(0, _Blocker())
EOF
    export PYTHONPATH="$BLOCK:$PYTHONPATH"
    ARGS+=(--folds 2 --repeats 1 --seeds 1 --trees 10 --rounds 5)
    SET_OVERRIDES+=(train.epochs=1 schedule.warmup_epochs=0 train.min_steps=1 train.ensemble=1
                    train.device=cpu)
    ((JOBS == 0)) && JOBS=2
elif ((QUICK)); then
    ARGS+=(--repeats 1)
fi

"$PY" - <<'EOF'
import os, sys, torch
gpu = torch.cuda.is_available()
print(f"bench_accuracy_all.sh: python {sys.version.split()[0]}, torch {torch.__version__}, "
      f"{os.cpu_count()} CPUs, " + (f"CUDA: {torch.cuda.get_device_name(0)}" if gpu else
      "no CUDA device: training runs on the CPU"))
for name in ("sklearn", "lightgbm", "rasterio"):
    try:
        __import__(name)
        print(f"  {name}: ok")
    except ImportError as err:
        print(f"  {name}: MISSING ({err}); " + ("its baseline is skipped" if name == "lightgbm"
              else "needed"))
EOF

# parts_of SET: the processes of a set, one line each: NAME|--models|--baselines|threads|--units
# The sitsformer recipe (~13 ms per update on an H200 against ~7 for TempCNN, ~9 for L-TAE)
# runs one process per seed on the two large fixed sets (3 x ~6,500 updates), and without
# --quick every deep model runs one process per repeat on Rondonia (3,000 updates per fold:
# 3-model ensemble).
parts_of() {
    local set=$1 t=1 n
    if ((PER_SET)); then
        echo "all|sitsformer,tempcnn,ltae|random_forest,lightgbm|$(((SMOKE)) && echo 1 || echo 3)|"
        return
    fi
    case $set in
        formosat2_crop|slovenia_pixels)
            for ((n = 0; n < SEEDS; n++)); do echo "sitsformer_s$n|sitsformer||$t|s$n"; done
            echo "tempcnn|tempcnn||$t|"
            echo "ltae|ltae||$t|" ;;
        rondonia)
            for m in sitsformer tempcnn ltae; do
                if ((QUICK || SMOKE)); then
                    echo "$m|$m||$t|"
                else
                    echo "${m}_r0|$m||$t|r0f*"
                    echo "${m}_r1|$m||$t|r1f*"
                fi
            done ;;
        *)
            for m in sitsformer tempcnn ltae; do echo "$m|$m||$t|"; done ;;
    esac
    echo "baselines||random_forest,lightgbm|$(((SMOKE)) && echo 1 || echo 2)|"
}
SEEDS=3
((SMOKE)) && SEEDS=1
for ((i = 0; i < ${#EXTRA[@]}; i++)); do
    [[ ${EXTRA[$i]} == --seeds ]] && SEEDS=${EXTRA[$((i + 1))]}
done

RUN_CAP=$((CAP - 25))
((RUN_CAP < 10)) && RUN_CAP=10
START=$SECONDS
echo "bench_accuracy_all.sh: sets $SETS; $(((PER_SET)) && echo "one process per set" || echo "one process per set and model"); each stopped at ${RUN_CAP} s; output $OUTDIR"
PIDS=() NAMES=()
IFS=, read -ra SET_LIST <<< "$SETS"
for set in "${SET_LIST[@]}"; do
    while IFS='|' read -r pname models baselines threads units; do
        dir=$OUTDIR/$set/parts/$pname
        mkdir -p "$dir"
        while ((JOBS > 0)) && (($(jobs -rp | wc -l) >= JOBS)); do wait -n; done
        left=$((RUN_CAP - (SECONDS - START)))
        if ((left < 5)); then
            echo "  $set/$pname: not started (cap reached)"
            continue
        fi
        (
            export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads LOKY_MAX_CPU_COUNT=$threads
                unit_args=()
            [[ -n $units ]] && unit_args=(--units "$units")
            exec timeout -s TERM -k 15 "$left" "$PY" -m sitsformer benchmark --sets "$set" \
                --output "$dir" --models "$models" --baselines "$baselines" "${ARGS[@]}" \
                "${unit_args[@]}" "${EXTRA[@]}" "${SET_OVERRIDES[@]}" "train.threads=$threads"
        ) > "$dir.log" 2>&1 < /dev/null &
        PIDS+=($!)
        NAMES+=("$set/$pname")
        echo "  started $set/$pname (pid $!, $threads threads, cap ${left} s${units:+, runs $units})"
    done < <(parts_of "$set")
done
FAILED=0
for i in "${!PIDS[@]}"; do
    wait "${PIDS[$i]}"
    rc=$?
    # 0: finished; 124 / 130 / 137 / 143: stopped at the cap (the table holds what finished)
    case $rc in
        0) ;;
        124|130|137|143) echo "  ${NAMES[$i]}: stopped at the cap (exit $rc)" ;;
        *) echo "  ${NAMES[$i]}: FAILED (exit $rc; $OUTDIR/${NAMES[$i]/\//\/parts\/}.log)"
           FAILED=1 ;;
    esac
done
echo "bench_accuracy_all.sh: benchmarks ended after $((SECONDS - START)) s; merging"

SUMMARY=$OUTDIR/summary.md
: > "$SUMMARY"
for set in "${SET_LIST[@]}"; do
    parts=()
    while IFS='|' read -r pname _; do parts+=("$OUTDIR/$set/parts/$pname"); done < <(parts_of "$set")
    for p in "${parts[@]}"; do
        grep -E "error|Error|Traceback" "$p.log" > /dev/null 2>&1 && \
            { echo "--- $p.log (last lines)"; tail -n 5 "$p.log"; }
    done
    "$PY" -c 'import sys; from sitsformer.training.benchmark import merge_benchmarks
merge_benchmarks(sys.argv[2:], sys.argv[1])' "$OUTDIR/$set" "${parts[@]}" \
        || echo "bench_accuracy_all.sh: merging $set failed" >&2
    if [[ -f $OUTDIR/$set/benchmark.md ]]; then
        { echo "## $set"; echo; cat "$OUTDIR/$set/benchmark.md"; echo; } >> "$SUMMARY"
    fi
done
cat "$SUMMARY"
echo "bench_accuracy_all.sh: done in $SECONDS s; tables in $OUTDIR/<set>/benchmark.md, all in $SUMMARY"
exit $FAILED
