"""Does ``torch.compile`` pay on CPU? Eager against compiled, samples/s, in one run.

The original SITS-Former configuration (``bench_train_step.py``'s ``original``: 5x5 patch, 10
bands, 3 layers of width 256, 8 classes; T = 50, sample ``i`` with between T/2 and T valid dates)
is timed in the same process, alternating eager and compiled, for

* a **training step** (forward, cross-entropy, backward, AdamW step; fp32 and bf16 autocast),
* **inference** (eval-mode forward under ``torch.no_grad``; fp32).

The compiled model is ``torch.compile(model, fullgraph=True)`` (inductor; the model has no graph
break). Compile time (the first call; shorter when inductor's on-disk cache already has the
kernels) is reported separately and is not in the samples/s. After ``--warmup`` calls of each,
eager and compiled steps alternate one by one (``--steps`` pairs, the order flipped every
pair), so both see the same machine load; the table gives the median samples/s of each and the
median of the per-pair ratios compiled / eager.

Usage::

    python benchmarks/bench_compile.py                     # batch 64, fp32 + bf16, 10 pairs
    python benchmarks/bench_compile.py --batch 128 --steps 20 --dtypes fp32

GENERATED data only (random tensors).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

from sitsformer.models import create_sits_former


def make_batch(batch: int, t: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(t // 2, t + 1, (batch,), generator=g)
    mask = torch.arange(t)[None, :] < lengths[:, None]
    doy = torch.sort(torch.randint(1, 366, (batch, t), generator=g), dim=1).values * mask
    return dict(sequence=torch.randn(batch, t, 10, 5, 5, generator=g), mask=mask, doy=doy,
                label=torch.randint(0, 8, (batch,), generator=g))


def _autocast(dtype: str) -> contextlib.AbstractContextManager[Any]:
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def paired_times(fns: dict[str, Callable[[], Any]], steps: int, warmup: int
                 ) -> dict[str, list[float]]:
    """Seconds per call of each function, calls alternating one by one (order flipped every
    pair) after ``warmup`` calls of each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(steps):
        for kind in (list(fns) if i % 2 == 0 else list(reversed(fns))):
            t0 = time.perf_counter()
            fns[kind]()
            times[kind].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--steps", type=int, default=10, help="eager/compiled pairs timed")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"batch {args.batch}, T {args.seq_len}")
    batch = make_batch(args.batch, args.seq_len)
    torch.manual_seed(0)
    model = create_sits_former("sitsformer_original", num_classes=8)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    compiled = torch.compile(model, fullgraph=True)

    def train_step(net: torch.nn.Module, dtype: str) -> Callable[[], None]:
        def step() -> None:
            model.train()
            with _autocast(dtype):
                logits = net(batch["sequence"], batch["mask"], doy=batch["doy"])
                loss = F.cross_entropy(logits.float(), batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    def predict(net: torch.nn.Module) -> Callable[[], None]:
        def step() -> None:
            model.eval()
            with torch.no_grad():
                net(batch["sequence"], batch["mask"], doy=batch["doy"])
        return step

    cases = [(f"train {d}", train_step, d) for d in args.dtypes.split(",")]
    cases.append(("predict fp32", None, "fp32"))
    rows = []
    for name, make, dtype in cases:
        fns = {
            "eager": make(model, dtype) if make else predict(model),
            "compiled": make(compiled, dtype) if make else predict(compiled),
        }
        t0 = time.perf_counter()
        fns["compiled"]()  # the first call compiles
        compile_s = time.perf_counter() - t0
        times = paired_times(fns, args.steps, args.warmup)
        eager = args.batch / statistics.median(times["eager"])
        comp = args.batch / statistics.median(times["compiled"])
        ratio = statistics.median(e / c for e, c in zip(times["eager"], times["compiled"]))
        rows.append((name, eager, comp, ratio, compile_s))
        print(f"  {name}: per-pair ratios "
              f"{[round(e / c, 2) for e, c in zip(times['eager'], times['compiled'])]}",
              flush=True)
    print(f"{'case':<14}{'eager/s':>10}{'compiled/s':>12}{'ratio':>8}{'compile s':>11}")
    print("-" * 55)
    for name, eager, comp, ratio, compile_s in rows:
        print(f"{name:<14}{eager:>10.1f}{comp:>12.1f}{ratio:>8.2f}{compile_s:>11.1f}")


if __name__ == "__main__":
    main()
