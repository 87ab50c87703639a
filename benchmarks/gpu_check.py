"""The Python steps of ``benchmarks/gpu_check.sh``, one per call: ``python gpu_check.py STEP``.

Steps (each prints lines starting with its label; an assertion failure exits non-zero):

- ``info``: GPU, torch, CUDA;
- ``sync``: the padded forward under ``torch.cuda.set_sync_debug_mode("error")`` (no host
  synchronisation), and packed == padded on the GPU;
- ``throughput``: bf16 training steps of ``sitsformer_original`` (5x5 patches) and
  ``sitsformer_pixel`` (pixels), 10 bands, T = 50, samples/s at two batch sizes;
- ``fp16``: fp16 autocast + GradScaler steps of the tutorial model at batch 32 (the trainer's
  fp16 path), MFU against the fp16 matmul peak measured in the same process;
- ``torchrun``: NCCL init on one GPU, ``torchrun --nproc_per_node=1`` runs a 1-epoch
  ``sitsformer train`` on demo data;
- ``predict-compare``: ``sitsformer predict`` on the GPU (bf16, fp32) against the CPU (fp32) on
  a generated 64 x 64 x 12-date raster: class maps agree;
- ``predict-speed``: ``predict_raster`` (what ``sitsformer predict`` runs) of the original
  model, bf16 on the GPU, on a generated 2048 x 2048 x 24-date raster of 10 bands (a 512 x 512
  crop first), pixels/s and the projected hours for a 10980 x 10980 x 50-date Sentinel-2 tile.

``--cpu-smoke`` runs every step tiny on the CPU (fp32/bf16 instead of CUDA-only features), to
catch import and syntax errors where there is no GPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TILE = (10980, 10980, 50)  # a Sentinel-2 MGRS tile at 10 m, a year of clear-ish dates


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def info(dev: torch.device, smoke: bool, work: Path) -> None:
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(0)
        print(f"info: GPU {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, "
              f"CUDA {torch.version.cuda}")
    else:
        print(f"info: CPU ({torch.get_num_threads()} threads), torch {torch.__version__}")


def sync(dev: torch.device, smoke: bool, work: Path) -> None:
    from sitsformer.models import create_sits_former

    n, t = (4, 8) if smoke else (64, 50)
    model = create_sits_former("sitsformer_original", num_classes=8).to(dev).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, t, 10, 5, 5, generator=g).to(dev)
    mask = (torch.arange(t)[None] < torch.randint(t // 2, t + 1, (n,), generator=g)[:, None])
    mask = mask.to(dev)
    doy = (torch.arange(1, t + 1)[None].expand(n, t) * 7 % 366).to(dev)
    with torch.no_grad():
        model(x, mask, doy)  # warm-up (lazy init may synchronise)
        if dev.type == "cuda":
            torch.cuda.set_sync_debug_mode("error")
        try:
            padded = model(x, mask, doy)  # default on CUDA: padded path
        finally:
            if dev.type == "cuda":
                torch.cuda.set_sync_debug_mode(0)
        model.set_token_packing(True)
        packed = model(x, mask, doy)
    err = (packed - padded).abs().max().item()
    assert err < 1e-4, f"packed vs padded on {dev.type}: max difference {err}"
    print(f"sync: padded forward ran with sync_debug_mode='error' ({dev.type}); packed vs padded "
          f"max difference {err:.2e}")


def throughput(dev: torch.device, smoke: bool, work: Path) -> None:
    from bench_train_step import BenchConfig, make_batch, train_step

    from sitsformer.models import create_sits_former

    batches, t, steps, warmup = ((4,), 8, 2, 1) if smoke else ((128, 1024), 50, 10, 3)
    for variant in ("sitsformer_original", "sitsformer_pixel"):
        for batch in batches:
            cfg = BenchConfig(variant, (("num_classes", 8),), batch, t)
            torch.manual_seed(0)
            model = create_sits_former(variant, num_classes=8).to(dev).train()
            data = make_batch(cfg, model, dev)
            opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
            for _ in range(warmup):
                train_step(model, opt, data, dev, "bf16")
            _sync(dev)
            t0 = time.perf_counter()
            for _ in range(steps):
                loss = train_step(model, opt, data, dev, "bf16")
            _sync(dev)
            dt = (time.perf_counter() - t0) / steps
            assert torch.isfinite(loss), f"{variant} batch {batch}: loss {loss.item()}"
            mem = (f", peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
                   if dev.type == "cuda" else "")
            print(f"throughput: {variant} bf16 batch {batch} T {t}: {batch / dt:.0f} samples/s "
                  f"({dt * 1e3:.1f} ms/step{mem})", flush=True)
            del model, opt, data
            if dev.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()


def fp16(dev: torch.device, smoke: bool, work: Path) -> None:
    from bench_train_step import CONFIGS, count_flops, make_batch, train_step

    from sitsformer.models import create_sits_former

    n, batch, dtype = (256, 1, torch.bfloat16) if smoke else (8192, 32, torch.float16)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn_like(a)
    torch.mm(a, b)
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(20):
        torch.mm(a, b)
    _sync(dev)
    peak = 2 * n**3 * 20 / (time.perf_counter() - t0)
    cfg = CONFIGS["tutorial"]
    overrides = dict(cfg.overrides) | ({"img_size": 32, "num_layers": 1} if smoke else {})
    model = create_sits_former(cfg.variant, **overrides).to(dev)
    data = make_batch(type(cfg)(cfg.variant, cfg.overrides, batch, 4 if smoke else cfg.seq_len),
                      model, dev)
    flops = count_flops(model, data)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)

    def step() -> torch.Tensor:
        return train_step(model, opt, data, dev, "fp16" if dtype == torch.float16 else "bf16",
                          scaler)

    for _ in range(1 if smoke else 3):
        step()
    _sync(dev)
    t0 = time.perf_counter()
    reps = 1 if smoke else 10
    for _ in range(reps):
        loss = step()
    _sync(dev)
    dt = (time.perf_counter() - t0) / reps
    assert torch.isfinite(loss), f"fp16 + GradScaler: loss {loss.item()}"
    name = "fp16 + GradScaler" if dtype == torch.float16 else "bf16 (smoke)"
    print(f"fp16: {name}, tutorial batch {batch}: {batch / dt:.1f} samples/s, "
          f"{flops * batch / dt / 1e12:.1f} TFLOP/s, {100 * flops * batch / dt / peak:.1f} % of "
          f"the matmul peak ({peak / 1e12:.0f} TFLOP/s), scale {scaler.get_scale():g}",
          flush=True)
    # Accuracy: the original model trained 300 steps on generated data in bf16 and in fp16 +
    # GradScaler (same seed, same batches), scored on held-out generated samples.
    from bench_train_step import accuracy_check

    steps, dts = (3, ("fp32", "bf16")) if smoke else (300, ("bf16", "fp16"))
    acc = accuracy_check(steps, dev.type, dtypes=dts, n_samples=120 if smoke else 1200)
    a, b = (acc[d] for d in dts)
    print(f"fp16: accuracy after {steps} steps on generated data: {dts[0]} {a:.3f}, {dts[1]} "
          f"{b:.3f} (difference {100 * (b - a):+.1f} points; the target is within 1)")


def torchrun(dev: torch.device, smoke: bool, work: Path) -> None:
    precision = "fp32" if smoke else "bf16"
    (work / "exp.yaml").write_text(
        "model: {variant: sitsformer_pixel, embed_dim: 32, num_heads: 2, num_layers: 1}\n"
        f"data: {{source: demo, split: group, demo_samples: {48 if smoke else 96}, "
        "batch_size: 16}\n"
        f"train: {{epochs: 1, precision: {precision}}}\n"
        f"logging: {{run_dir: {work / 'runs'}, name: ddp, tensorboard: false, progress: false, "
        "plots: false}\n")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
                           "-m", "sitsformer", "train", "--config", str(work / "exp.yaml")],
                          capture_output=True, text=True)
    log = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 0, "torchrun: exit {}\n{}".format(done.returncode,
                                                               "\n".join(log[-30:]))
    assert (work / "runs" / "ddp" / "last.pt").is_file(), "torchrun run wrote no last.pt"
    backend = "NCCL" if dev.type == "cuda" else "gloo"
    status = next((line for line in log if line.startswith("status:")), log[-1] if log else "")
    print(f"torchrun: 1 process ({backend}), demo data, {status}")


def _random_model(work: Path, src_folder: Path, classes: int):
    from sitsformer.data import InputSpec
    from sitsformer.inference import open_raster_source
    from sitsformer.models import create_sits_former, save_checkpoint

    torch.manual_seed(0)
    model = create_sits_former("sitsformer_original", num_classes=classes)
    spec = InputSpec(bands=list(open_raster_source(src_folder).bands), scale=10000.0)
    save_checkpoint(work / "model.pt", {"model_config": model.config.to_dict(),
                                        "model_state_dict": model.state_dict(),
                                        "input_spec": spec.to_dict(), "epoch": 0,
                                        "global_step": 0})
    return model, spec


def predict_compare(dev: torch.device, smoke: bool, work: Path) -> None:
    import rasterio
    from bench_predict import write_raster

    raster = work / "raster_small"
    raster.mkdir()
    write_raster(raster, 16 if smoke else 64, 4 if smoke else 12)
    _random_model(work, raster, 5)
    runs = (("cpu", "fp32"), ("cpu", "bf16")) if smoke else (
        ("cpu", "fp32"), ("cuda", "bf16"), ("cuda", "fp32"))
    maps = {}
    for device, precision in runs:
        out = work / f"map_{device}_{precision}.tif"
        done = subprocess.run([sys.executable, "-m", "sitsformer", "predict", "--checkpoint",
                               str(work / "model.pt"), "--input", str(raster), "--output",
                               str(out), "--device", device, "--precision", precision,
                               "--window", "32", "--quiet"], capture_output=True, text=True)
        assert done.returncode == 0, (f"sitsformer predict --device {device} --precision "
                                      f"{precision}: exit {done.returncode}\n{done.stderr}")
        with rasterio.open(out) as ds:
            maps[device, precision] = ds.read(1)
    ref = maps["cpu", "fp32"]
    agree = {k: float((v == ref).mean()) for k, v in maps.items() if k != ("cpu", "fp32")}
    print("predict-compare: against CPU fp32, class maps agree on "
          + ", ".join(f"{d} {p} {a:.2%}" for (d, p), a in agree.items()) + " of pixels")
    for (d, p), a in agree.items():
        assert a > (0.999 if p == "fp32" else 0.95), f"{d} {p} class map differs from CPU fp32"


def forward_rate(model: torch.nn.Module, dev: torch.device, batch: int, dates: int,
                 precision: str) -> float:
    """Pixels/s of the model's forward alone on random 5 x 5 neighbourhoods on the device."""
    model = model.to(dev).eval()
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    seq = torch.rand(batch, dates, cfg.in_channels, cfg.img_size, cfg.img_size, generator=g)
    pm = torch.ones(batch, dates, cfg.img_size, cfg.img_size, dtype=torch.bool)
    args = [x.to(dev) for x in (seq, pm.any(-1).any(-1), torch.arange(1, dates + 1)
                                .expand(batch, dates), pm)]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    @torch.no_grad()
    def fwd() -> None:
        with torch.autocast(dev.type, dtype=dtype, enabled=precision != "fp32"):
            model(args[0], args[1], doy=args[2], pixel_mask=args[3])

    fwd()
    _sync(dev)
    reps = 2 if dev.type == "cpu" else 20
    t0 = time.perf_counter()
    for _ in range(reps):
        fwd()
    _sync(dev)
    return batch * reps / (time.perf_counter() - t0)


def predict_speed(dev: torch.device, smoke: bool, work: Path) -> None:
    from bench_predict import Crop, write_raster

    from sitsformer.inference import open_raster_source, predict_raster

    size, dates = (32, 4) if smoke else (2048, 24)
    crop, window, batch = (16, 16, 64) if smoke else (512, 512, 8192)
    precision = "fp32" if smoke else "bf16"
    raster = work / "raster_big"
    raster.mkdir()
    t0 = time.perf_counter()
    write_raster(raster, size, dates)
    print(f"predict-speed: wrote {size} x {size} x {dates} dates x 10 bands (int16) in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    model, spec = _random_model(work, raster, 10)
    src = open_raster_source(raster)
    kw = dict(window=window, batch_size=batch, precision=precision, progress=False, spec=spec,
              device=dev, overwrite=True)
    predict_raster(model, Crop(src, 8, 8), work / "warm.tif", **kw)  # kernels, allocator
    for name, region in ((f"crop {crop} x {crop}", Crop(src, crop, crop)),
                         (f"whole {size} x {size}", src)):
        _sync(dev)
        res = predict_raster(model, region, work / f"map_{region.height}.tif", **kw)
        px, blocks = res.num_pixels, max(res.block_seconds, 1e-9)
        line = (f"predict-speed: sitsformer_original {precision} {dev.type}, {name} x {dates} "
                f"dates (window {window}, batch {batch}): {px / res.seconds:,.0f} pixels/s "
                f"end to end ({res.seconds:.1f} s), {px / blocks:,.0f} pixels/s in the blocks")
        print(line, flush=True)
    rate = forward_rate(model, dev, batch, dates, precision)
    print(f"predict-speed: the model's own forward rate, {batch} pixels x {dates} dates already "
          f"on the device: {rate:,.0f} pixels/s; predict end to end reaches "
          f"{px / res.seconds / rate:.2f} of it (target 0.5)", flush=True)
    # Projection: time proportional to pixels x dates (the per-date embedding and MLP
    # dominate at T <= 50; attention's T^2 term would make 50 dates somewhat slower).
    h, w, t = TILE
    factor = (h * w * t) / (size * size * dates)
    hours = res.seconds * factor / 3600
    print(f"predict-speed: projected {hours:.2f} h for a {h} x {w} x {t}-date tile on this "
          f"{'GPU' if dev.type == 'cuda' else 'CPU'} ({factor:.1f} x the pixel-dates of the "
          f"whole raster above; assumes time proportional to pixels x dates, same window and "
          "batch, reading as fast as here)")


STEPS = {"info": info, "sync": sync, "throughput": throughput, "fp16": fp16,
         "torchrun": torchrun, "predict-compare": predict_compare,
         "predict-speed": predict_speed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("steps", nargs="+", choices=list(STEPS))
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run tiny on the CPU (catches import and syntax errors; no numbers)")
    ap.add_argument("--work", help="scratch folder (default: a temporary one)")
    args = ap.parse_args(argv)
    dev = torch.device("cpu" if args.cpu_smoke else "cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"no CUDA device visible to torch {torch.__version__}", file=sys.stderr)
        return 2
    if args.cpu_smoke:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    with (contextlib.nullcontext(args.work) if args.work
          else tempfile.TemporaryDirectory()) as tmp:
        for name in args.steps:
            work = Path(tmp) / name
            work.mkdir(parents=True, exist_ok=True)
            STEPS[name](dev, args.cpu_smoke, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
