"""Training from a Zarr sample store: set-up time, samples/s against memory, peak RSS.

    PYTHONPATH=src python benchmarks/bench_store_training.py [--n 50000] [--steps 30]
    PYTHONPATH=src python benchmarks/bench_store_training.py --n 500000 --memory-samples 20000

Writes a GENERATED raster (:func:`sitsformer.data.write_demo_raster`: 24 dates, 10 bands, one
field polygon per 32 x 32 px cell, so about 784 labelled pixels per cell) large enough for
``--n`` samples, builds its store block by block (``sitsformer data build --block 256``, 5 x 5
patches, in a child process: its time and peak RSS), then:

* set-up: ``DataModule(source=STORE).setup()`` (split, statistics, length scan), in seconds;
* loading: samples/s of the training loader alone (reading, preparing, collating);
* training: samples/s of full training steps (forward, cross-entropy, backward, AdamW) of the
  same model with the same batch, fed by the store's loader (chunk-aligned batches read with
  ``__getitems__``) and by the same kind of loader over training samples held in memory
  (the first ``--memory-samples`` of the split, read once before timing);
* peak RSS (``ru_maxrss``) after set-up, after the store's timings (before the in-memory copy
  is made), and at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rate(loader, steps: int, step=None, warmup: int = 2) -> float:
    """Samples/s over ``steps`` batches after ``warmup`` ones (``step(batch)`` per batch)."""
    it = iter(loader)
    for _ in range(warmup):
        batch = next(it)
        if step:
            step(batch)
    n, t0 = 0, time.perf_counter()
    for _ in range(steps):
        batch = next(it)
        if step:
            step(batch)
        n += int(batch["sequence"].shape[0])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="about this many samples")
    ap.add_argument("--dates", type=int, default=24)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per loader")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--memory-samples", type=int, default=20_000)
    ap.add_argument("--variant", default="sitsformer_pixel")
    ap.add_argument("--dir", default=None, help="working folder (default a temporary one)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from sitsformer.data import (S2_BANDS, DataModule, PreparedDataset, make_loader,
                                 write_demo_raster)
    from sitsformer.training import ClassificationTask
    from sitsformer.training.config import ExperimentConfig
    from sitsformer.training.run import build_model

    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    root = Path(args.dir or tempfile.mkdtemp())
    side = 32 * math.ceil(math.sqrt(args.n / 784))
    out: dict = {"raster": f"{side} x {side} px, {args.dates} dates, 10 bands"}
    t0 = time.perf_counter()
    r = write_demo_raster(root / "raster", height=side, width=side, num_dates=args.dates,
                          bands=S2_BANDS, block=32)
    out["raster_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()  # `sitsformer data build`, in its own process
    subprocess.run([sys.executable, "-m", "sitsformer", "data", "build", str(r["folder"]),
                    "--output", str(root / "train.zarr"), "--block", "256", "--chunk-size",
                    str(args.chunk_size), "-o", f"labels={r['labels']}", "-o", "patch_size=5",
                    "-o", "scale=10000", "--overwrite", "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    out.update(build_s=round(time.perf_counter() - t0, 1), build_peak_rss_mb=round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))

    t0 = time.perf_counter()
    dm = DataModule(source=str(root / "train.zarr"), split="random", batch_size=args.batch,
                    num_workers=args.workers, seed=0).setup()
    out.update(samples=len(dm.samples), setup_s=round(time.perf_counter() - t0, 2),
               split=dm.split_sizes(), peak_rss_mb_setup=round(rss_mb()))

    section = ExperimentConfig().model
    section = type(section)(**{**section.__dict__, "variant": args.variant})
    model = build_model(section, dm)
    task = ClassificationTask(num_classes=dm.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step(batch: dict) -> None:
        loss, _ = task.forward_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    store_loader = dm.train_loader()
    out["store_load_samples_s"] = round(rate(store_loader, args.steps * 3), 1)
    out["store_train_samples_s"] = round(rate(store_loader, args.steps, step), 1)
    out["peak_rss_mb_store"] = round(rss_mb())

    train = dm.splits["train"][:args.memory_samples]
    held = dm.samples.__getitems__(np.sort(train).tolist())  # read once, before timing
    memory = make_loader(PreparedDataset(held, np.arange(len(held)), dm.spec), args.batch,
                         seed=0, num_workers=args.workers)
    out["memory_load_samples_s"] = round(rate(memory, args.steps * 3), 1)
    out["memory_train_samples_s"] = round(rate(memory, args.steps, step), 1)
    out["peak_rss_mb_end"] = round(rss_mb())
    out.update(batch=args.batch, workers=args.workers, threads=args.threads,
               variant=args.variant, memory_samples=len(held))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
