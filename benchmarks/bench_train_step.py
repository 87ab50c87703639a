"""Training-step benchmark: samples/s, achieved FLOP/s against a measured matmul peak, peak memory.

For each configuration (the original SITS-Former, the tutorial's 224/16 scene model) and each
precision (fp32, bf16 autocast) one subprocess builds the model and an AdamW optimiser, runs
warm-up steps, then times full training steps (forward, cross-entropy, backward, AdamW step) and
reports the median. Each subprocess also measures the matmul peak of its precision (a large
``torch.mm``), before and after the timed steps, so that the efficiency ratio is taken under the
same machine load; its memory is the process's RSS high-water mark (``ru_maxrss``) above the RSS
right before the model was built (on CUDA: ``torch.cuda.max_memory_allocated``).

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` over one fp32 training step
(forward + backward; the optimiser adds no matmul FLOPs), with the stem in its reference form
(``nn.functional.conv3d``), so the count is the model's useful work whatever kernels run it.

Usage::

    python benchmarks/bench_train_step.py                       # both configs, fp32 and bf16, CPU
    python benchmarks/bench_train_step.py --configs original --repeats 3
    python benchmarks/bench_train_step.py --accuracy 300        # + fp32 vs bf16 accuracy check
    python benchmarks/bench_train_step.py --device cuda --batch-tutorial 32

GENERATED data only: random tensors for speed, ``make_demo_data`` for the accuracy check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from sitsformer.models import SITSFormer, create_sits_former


@dataclass(frozen=True)
class BenchConfig:
    """One benchmarked setting: a registered variant plus the batch shape."""

    variant: str
    overrides: tuple[tuple[str, Any], ...]
    batch: int
    seq_len: int


CONFIGS: dict[str, BenchConfig] = {
    # The published SITS-Former: 5x5 patch, 10 bands, 8 classes, batch 128, T = 50.
    "original": BenchConfig("sitsformer_original", (("num_classes", 8),), 128, 50),
    # The tutorial's scene model: 224 px, patch 16, 13 bands, width 256, 8 layers, 8 heads, T = 20.
    "tutorial": BenchConfig("sitsformer_base", (("num_classes", 10),), 2, 20),
}


# ------------------------------------------------------------------------------------- helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager[Any]:
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if dtype == "fp16":
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def matmul_peak(device: torch.device, dtype: str, n: int = 2048, reps: int = 5) -> float:
    """Best FLOP/s of an ``n x n`` by ``n x n`` ``torch.mm`` in ``dtype`` over ``reps`` timings."""
    tdtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=tdtype)
    b = torch.randn(n, n, device=device, dtype=tdtype)
    out = torch.empty(n, n, device=device, dtype=tdtype)
    inner = 3 if device.type == "cpu" else 50
    torch.mm(a, b, out=out)
    best = 0.0
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=out)
        _sync(device)
        best = max(best, 2 * n**3 * inner / (time.perf_counter() - start))
    return best


def make_batch(cfg: BenchConfig, model: SITSFormer, device: torch.device,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """Random batch with realistic padding: sample ``i`` has between T/2 and T valid dates."""
    mc = model.config
    g = torch.Generator().manual_seed(seed)
    b, t = cfg.batch, cfg.seq_len
    seq = torch.rand(b, t, mc.in_channels, mc.img_size, mc.img_size, generator=g)
    lengths = torch.randint(t // 2, t + 1, (b,), generator=g)
    lengths[0] = t
    mask = torch.arange(t)[None, :] < lengths[:, None]
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values * mask
    label = torch.randint(0, mc.num_classes, (b,), generator=g)
    return {k: v.to(device) for k, v in
            dict(sequence=seq, mask=mask, doy=doy, label=label).items()}


def train_step(model: SITSFormer, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
               device: torch.device, dtype: str, scaler: Any = None) -> torch.Tensor:
    """One full training step (with ``scaler``, a ``GradScaler``, for fp16); returns the
    (detached) loss."""
    with _autocast(device, dtype):
        logits = model(batch["sequence"], batch["mask"], doy=batch["doy"])
        loss = F.cross_entropy(logits.float(), batch["label"])
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return loss.detach()


@contextlib.contextmanager
def reference_stem(model: SITSFormer) -> Iterator[None]:
    """Run the conv3d stem through ``F.conv3d`` (the reference formulation) inside the block."""
    embed = model.embed
    old = getattr(embed, "fast", None)
    if old is not None:
        embed.fast = False
    try:
        yield
    finally:
        if old is not None:
            embed.fast = old


def count_flops(model: SITSFormer, batch: dict[str, torch.Tensor]) -> float:
    """FLOPs of one fp32 forward + backward (model's useful work), per sample."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with reference_stem(model), counter:
        logits = model(batch["sequence"], batch["mask"], doy=batch["doy"])
        F.cross_entropy(logits, batch["label"]).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch["sequence"].shape[0]


def _current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------------- one worker
def run_worker(name: str, dtype: str, device_name: str, steps: int, warmup: int,
               batch_size: int | None) -> dict[str, Any]:
    """Benchmark one configuration in one precision (meant to run in its own process)."""
    device = torch.device(device_name)
    cfg = CONFIGS[name]
    if batch_size:
        cfg = BenchConfig(cfg.variant, cfg.overrides, batch_size, cfg.seq_len)
    peaks = [matmul_peak(device, dtype)]
    torch.manual_seed(0)
    rss0 = _current_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        mem0 = torch.cuda.memory_allocated(device)
    model = create_sits_former(cfg.variant, **dict(cfg.overrides)).to(device)
    batch = make_batch(cfg, model, device)
    flops = count_flops(model, batch)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(warmup):
        train_step(model, opt, batch, device, dtype)
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        train_step(model, opt, batch, device, dtype)
        _sync(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        mem = torch.cuda.max_memory_allocated(device) - mem0
    else:
        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    peaks.append(matmul_peak(device, dtype))
    step_s = statistics.median(times)
    peak = max(peaks)
    return dict(config=name, dtype=dtype, device=device_name, batch=cfg.batch, seq_len=cfg.seq_len,
                params=sum(p.numel() for p in model.parameters()),
                gflop_per_sample=flops / 1e9, step_s=step_s, samples_per_s=cfg.batch / step_s,
                achieved_tflops=flops * cfg.batch / step_s / 1e12, peak_tflops=peak / 1e12,
                peak_fraction=flops * cfg.batch / step_s / peak, peak_mem_mb=mem / 2**20,
                step_times=times)


def run_in_subprocess(args: argparse.Namespace, name: str, dtype: str) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, dtype,
           "--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup)]
    batch = args.batch_tutorial if name == "tutorial" else args.batch_original
    if batch:
        cmd += ["--batch-" + name, str(batch)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker {name}/{dtype} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ accuracy check
def accuracy_check(steps: int, device_name: str, seed: int = 0,
                   dtypes: tuple[str, ...] = ("fp32", "bf16"),
                   n_samples: int = 1200) -> dict[str, float]:
    """Train the original config for ``steps`` steps on GENERATED demo data in each of
    ``dtypes`` (fp32; bf16 autocast; fp16 autocast with a GradScaler, CUDA only), same seed and
    same batches, and return each run's held-out accuracy (the last ``n_samples // 6``)."""
    from sitsformer._progress import progress_bar

    from sitsformer.data import collate
    from sitsformer.data.synthetic import make_demo_data

    device = torch.device(device_name)
    data = make_demo_data(n_samples=n_samples, img_size=5, seed=seed)
    samples = [{k: v for k, v in s.items() if k != "group"} for s in data.samples]
    cut = n_samples - n_samples // 6
    train, test = samples[:cut], samples[cut:]
    groups = {s["group"] for s in data.samples[:cut]} & {s["group"] for s in data.samples[cut:]}
    assert not groups, "train and test share fields"
    train_batch, test_batch = collate(train), collate(test)  # padded to their longest T once
    train_batch["sequence"] = train_batch["sequence"] / 10000.0  # reflectance x 10000 -> 0..1
    results = {}
    for dtype in dtypes:
        torch.manual_seed(seed)
        model = create_sits_former("sitsformer_original", num_classes=len(data.classes)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
        scaler = torch.amp.GradScaler(device.type) if dtype == "fp16" else None
        g = torch.Generator().manual_seed(seed)
        for _ in progress_bar(range(steps), desc=f"accuracy {dtype}", leave=False):
            idx = torch.randint(0, len(train), (64,), generator=g)
            batch = {k: train_batch[k][idx].to(device)
                     for k in ("sequence", "mask", "doy", "label")}
            loss = train_step(model, opt, batch, device, dtype, scaler)
            if scaler is not None and not torch.isfinite(loss):
                raise FloatingPointError(f"fp16 + GradScaler: loss {loss.item()}")
        model.eval()
        with torch.no_grad(), _autocast(device, dtype):
            seq = test_batch["sequence"].to(device) / 10000.0
            logits = model(seq, test_batch["mask"].to(device), doy=test_batch["doy"].to(device))
        acc = (logits.argmax(-1).cpu() == test_batch["label"]).float().mean().item()
        results[dtype] = acc
    return results


# ------------------------------------------------------------------------------------- report
def _print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'config':9} {'dtype':5} {'batch':>5} {'T':>3} {'GFLOP/sample':>12} "
            f"{'samples/s':>10} {'TFLOP/s':>8} {'peak TFLOP/s':>12} {'of peak':>8} {'mem MiB':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['config']:9} {r['dtype']:5} {r['batch']:>5} {r['seq_len']:>3} "
              f"{r['gflop_per_sample']:>12.3f} {r['samples_per_s']:>10.3g} "
              f"{r['achieved_tflops']:>8.3f} {r['peak_tflops']:>12.3f} "
              f"{100 * r['peak_fraction']:>7.1f}% {r['peak_mem_mb']:>8.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="original,tutorial",
                        help=f"comma-separated subset of {sorted(CONFIGS)}")
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated subset of fp32,bf16")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh processes per (config, dtype); the median is reported")
    parser.add_argument("--batch-original", type=int, default=None)
    parser.add_argument("--batch-tutorial", type=int, default=None)
    parser.add_argument("--accuracy", type=int, default=0, metavar="STEPS",
                        help="also train fp32 and bf16 for STEPS steps on demo data")
    parser.add_argument("--json", default=None, help="write all results to this file")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        name, dtype = args.worker
        batch = args.batch_tutorial if name == "tutorial" else args.batch_original
        print(json.dumps(run_worker(name, dtype, args.device, args.steps, args.warmup, batch)))
        return 0

    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    rows = []
    for name in [n for n in args.configs.split(",") if n]:
        for dtype in args.dtypes.split(","):
            runs = [run_in_subprocess(args, name, dtype) for _ in range(args.repeats)]
            runs.sort(key=lambda r: r["samples_per_s"])
            med = dict(runs[len(runs) // 2])
            med["repeats"] = [float(f"{r['samples_per_s']:.3g}") for r in runs]
            rows.append(med)
            print(f"  {name}/{dtype}: samples/s over repeats {med['repeats']}", flush=True)
    _print_table(rows)
    out: dict[str, Any] = {"results": rows}
    if args.accuracy:
        acc = accuracy_check(args.accuracy, args.device)
        print(f"accuracy after {args.accuracy} steps on GENERATED demo data (200 held-out "
              f"samples): fp32 {acc['fp32']:.3f}, bf16 {acc['bf16']:.3f}")
        out["accuracy"] = acc
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
