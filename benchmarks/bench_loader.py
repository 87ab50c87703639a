"""Loader throughput from the Zarr sample store vs the training step it feeds (CPU, fp32).

Builds a store of GENERATED demo data (5x5 patches, 10 bands, T = 50, like the original
SITS-Former input), then measures in one run:

* samples/s of a ``DataLoader`` over the store (batch 128, Scale + Normalize +
  RandomFlipRotate, ``collate``) with 0, 1 and 2 worker processes, fully shuffled and with the
  chunk-aware ``ChunkBatchSampler``;
* samples/s of one training step (forward, backward, AdamW) of
  ``create_sits_former("sitsformer_original")`` at batch 128, T = 50, fp32 on the CPU.

The loader is not the bottleneck when its samples/s exceed the training step's.

    python benchmarks/bench_loader.py [--samples 2048] [--batches 8] [--steps 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sitsformer.data import (ChunkBatchSampler, Compose, DemoDataset, Normalize, RandomFlipRotate, Scale,
                             build_store, collate)


def loader_rate(store, workers: int, batch: int, n_batches: int, chunked: bool = False
                ) -> float:
    if chunked:
        loader = DataLoader(store, batch_sampler=ChunkBatchSampler(store, batch),
                            num_workers=workers, collate_fn=collate,
                            prefetch_factor=2 if workers else None)
    else:
        loader = DataLoader(store, batch_size=batch, shuffle=True, num_workers=workers,
                            collate_fn=collate, prefetch_factor=2 if workers else None)
    it = iter(loader)
    next(it)  # worker start-up and first chunk reads are not steady state
    start = time.perf_counter()
    n = 0
    for _ in range(n_batches):
        b = next(it)
        n += b["sequence"].shape[0]
    return n / (time.perf_counter() - start)


def train_rate(batch: int, t: int, steps: int) -> float:
    from sitsformer.models import create_sits_former

    model = create_sits_former("sitsformer_original", num_classes=8)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, t, 10, 5, 5)
    mask = torch.ones(batch, t, dtype=torch.bool)
    doy = torch.arange(1, t + 1).repeat(batch, 1) * 7
    y = torch.randint(0, 8, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x, mask, doy), y)
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=2048)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, default=8, help="timed batches per loader setting")
    p.add_argument("--steps", type=int, default=3, help="timed training steps")
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        demo = DemoDataset(n_samples=args.samples, img_size=5, min_dates=50, max_dates=50)
        t0 = time.perf_counter()
        store = build_store(demo, Path(tmp) / "bench.zarr", chunk_size=args.chunk_size,
                            progress=False)
        build_s = time.perf_counter() - t0
        store.transform = Compose([Scale(1e-4), Normalize(store.mean * 1e-4, store.std * 1e-4),
                                   RandomFlipRotate()])
        rows = [(f"loader, shuffle, {w} worker(s)",
                 loader_rate(store, w, args.batch, args.batches)) for w in (0, 1, 2)]
        rows += [(f"loader, ChunkBatchSampler, {w} worker(s)",
                  loader_rate(store, w, args.batch, args.batches, chunked=True))
                 for w in (0, 1, 2)]
        rows.append(("train step sitsformer_original (fp32, CPU)",
                     train_rate(args.batch, 50, args.steps)))
    print(f"GENERATED demo data: {args.samples} samples, T=50, C=10, 5x5; batch {args.batch}; "
          f"store chunk {args.chunk_size}; built in {build_s:.1f} s; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'what':<44} {'samples/s':>10}")
    for name, rate in rows:
        print(f"{name:<44} {rate:>10.1f}")
    train = rows[-1][1]
    best = max(r for _, r in rows[:-1])
    print(f"best loader / train step = {best / train:.1f}x "
          f"({'loader is not' if best > train else 'LOADER IS'} the bottleneck)")


if __name__ == "__main__":
    main()
