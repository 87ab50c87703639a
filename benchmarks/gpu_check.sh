#!/usr/bin/env bash
# The CUDA paths no CPU test covers, in one run of a few minutes on one GPU:
#   1. bf16 and fp16 + GradScaler training steps of the tutorial model (224/16, 13 bands,
#      8 layers, T 20) at batch 32, MFU against a matmul peak measured in the same process
#      (bench_train_step.py --device cuda), and the original configuration (batch 128);
#   2. saved-for-backward bytes and torch.cuda.max_memory_allocated with and without
#      checkpointing at batch 32, and the plans for 8 / 24 GiB (bench_memory.py --device cuda);
#   3. the forward without host synchronisations (padded path) under
#      torch.cuda.set_sync_debug_mode("error"), and packed == padded on the GPU;
#   4. NCCL init on one GPU: torchrun --nproc_per_node=1 runs a 1-epoch `sitsformer train`;
#   5. `sitsformer predict` on the GPU (bf16) against the CPU (fp32) on a generated raster.
# Usage: bash benchmarks/gpu_check.sh [PYTHON]   (default: python on PATH; run from the repo root)
# Fails at once, saying why, where no CUDA device is visible.
set -euo pipefail
PY=${1:-python}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check.sh: no CUDA device visible to torch ($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1)); this script only runs on a GPU machine" >&2
    exit 2
fi
"$PY" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")'
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
step() { echo; echo "== $* ($(date +%T))"; }

step "1. training steps, MFU against the measured matmul peak"
timeout 150 "$PY" benchmarks/bench_train_step.py --device cuda --configs tutorial,original \
    --dtypes bf16,fp32 --batch-tutorial 32 --steps 10 --warmup 3 --json "$WORK/train.json"
timeout 90 "$PY" - <<'PYEOF'
# fp16 autocast + GradScaler at batch 32 (the trainer's fp16 path), MFU vs the fp16 matmul peak.
import sys, time, torch, torch.nn.functional as F
sys.path.insert(0, "benchmarks")
from bench_train_step import CONFIGS, count_flops, make_batch
from sitsformer.models import create_sits_former
from sitsformer.training.memory import probe_batch
dev = torch.device("cuda")
a = torch.randn(8192, 8192, device=dev, dtype=torch.float16); b = torch.randn_like(a)
torch.mm(a, b); torch.cuda.synchronize(); t0 = time.perf_counter()
for _ in range(20): torch.mm(a, b)
torch.cuda.synchronize(); peak = 2 * 8192**3 * 20 / (time.perf_counter() - t0)
cfg = CONFIGS["tutorial"]
model = create_sits_former(cfg.variant, **dict(cfg.overrides)).to(dev)
batch = make_batch(type(cfg)(cfg.variant, cfg.overrides, 32, cfg.seq_len), model, dev)
flops = count_flops(model, batch)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4); scaler = torch.amp.GradScaler("cuda")
def step():
    with torch.autocast("cuda", dtype=torch.float16):
        loss = F.cross_entropy(model(batch["sequence"], batch["mask"], doy=batch["doy"]).float(), batch["label"])
    opt.zero_grad(set_to_none=True); scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
    return loss
for _ in range(3): step()
torch.cuda.synchronize(); t0 = time.perf_counter()
for _ in range(10): loss = step()
torch.cuda.synchronize(); dt = (time.perf_counter() - t0) / 10
assert torch.isfinite(loss), f"fp16 + GradScaler: loss {loss.item()}"
print(f"fp16 + GradScaler, tutorial batch 32: {32 / dt:.1f} samples/s, {flops * 32 / dt / 1e12:.1f} TFLOP/s, "
      f"{100 * flops * 32 / dt / peak:.1f} % of the fp16 matmul peak ({peak / 1e12:.0f} TFLOP/s), scale {scaler.get_scale():g}")
PYEOF

step "2. memory at batch 32, with and without checkpointing"
timeout 120 "$PY" benchmarks/bench_memory.py --device cuda --batch 32 --precisions bf16 --budgets 8,24

step "3. no host synchronisation in the padded forward; packed == padded on the GPU"
timeout 60 "$PY" - <<'PYEOF'
import torch
from sitsformer.models import create_sits_former
dev = torch.device("cuda")
model = create_sits_former("sitsformer_original", num_classes=8).to(dev).eval()
g = torch.Generator().manual_seed(0)
x = torch.rand(64, 50, 10, 5, 5, generator=g).to(dev)
mask = (torch.arange(50)[None] < torch.randint(25, 51, (64,), generator=g)[:, None]).to(dev)
doy = (torch.arange(1, 51)[None].expand(64, 50) * 7 % 366).to(dev)
with torch.no_grad():
    model(x, mask, doy)  # warm-up (lazy init may synchronise)
    torch.cuda.set_sync_debug_mode("error")
    try:
        padded = model(x, mask, doy)  # default on CUDA: padded path
    finally:
        torch.cuda.set_sync_debug_mode(0)
    model.set_token_packing(True)
    packed = model(x, mask, doy)
err = (packed - padded).abs().max().item()
assert err < 1e-4, f"packed vs padded on CUDA: max difference {err}"
print(f"padded forward ran with sync_debug_mode='error'; packed vs padded max difference {err:.2e}")
PYEOF

step "4. NCCL init on one GPU: torchrun --nproc_per_node=1 sitsformer train (1 epoch, demo data)"
cat > "$WORK/exp.yaml" <<YAML
model: {variant: sitsformer_pixel, embed_dim: 32, num_heads: 2, num_layers: 1}
data: {source: demo, split: group, demo_samples: 96, batch_size: 16}
train: {epochs: 1, precision: bf16}
logging: {run_dir: $WORK/runs, name: ddp, tensorboard: false, progress: false, plots: false}
YAML
timeout 120 "$PY" -m torch.distributed.run --nproc_per_node=1 -m sitsformer train \
    --config "$WORK/exp.yaml" > "$WORK/ddp.log" 2>&1 || { cat "$WORK/ddp.log"; exit 1; }
tail -n 3 "$WORK/ddp.log"
test -f "$WORK/runs/ddp/last.pt" || { echo "torchrun run wrote no last.pt" >&2; exit 1; }

step "5. sitsformer predict on the GPU (bf16) against the CPU (fp32)"
timeout 120 "$PY" - "$WORK" <<'PYEOF'
import sys, subprocess
from pathlib import Path
import numpy as np, rasterio, torch
sys.path.insert(0, "benchmarks")
from bench_predict import write_raster
from sitsformer.data import InputSpec
from sitsformer.models import create_sits_former, save_checkpoint
work = Path(sys.argv[1]); raster = work / "raster"; raster.mkdir()
write_raster(raster, 64, 12)
torch.manual_seed(0)
model = create_sits_former("sitsformer_original", num_classes=5)
from sitsformer.inference import open_raster_source
spec = InputSpec(bands=list(open_raster_source(raster).bands), scale=10000.0)
save_checkpoint(work / "model.pt", {"model_config": model.config.to_dict(),
                                   "model_state_dict": model.state_dict(),
                                   "input_spec": spec.to_dict()})
maps = {}
for device, precision in (("cpu", "fp32"), ("cuda", "bf16"), ("cuda", "fp32")):
    out = work / f"map_{device}_{precision}.tif"
    subprocess.run([sys.executable, "-m", "sitsformer", "predict", "--checkpoint",
                    str(work / "model.pt"), "--input", str(raster), "--output", str(out),
                    "--device", device, "--precision", precision, "--window", "32", "--quiet"],
                   check=True)
    with rasterio.open(out) as ds:
        maps[device, precision] = ds.read(1)
agree32 = (maps["cuda", "fp32"] == maps["cpu", "fp32"]).mean()
agree16 = (maps["cuda", "bf16"] == maps["cpu", "fp32"]).mean()
print(f"predict: CUDA fp32 agrees with CPU fp32 on {agree32:.2%} of pixels, CUDA bf16 on {agree16:.2%}")
assert agree32 > 0.999 and agree16 > 0.95, "GPU class maps differ from the CPU map"
PYEOF
echo; echo "gpu_check.sh: all checks passed"
