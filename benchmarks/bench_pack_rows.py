"""Packed row counts rounded (``sitsformer.models.sits_former.packed_rows``, 5 significant
bits) against exact counts, ``sitsformer_original`` in bf16 on CPU, interleaved in one process.

    PYTHONPATH=src python benchmarks/bench_pack_rows.py [--rounds 5] [--fixed]

Every step gets a NEW random batch (T 50, ~20 % padded dates) unless ``--fixed``, which
repeats the same few batches (the exact counts then repeat too, so oneDNN's kernel cache
already holds their shapes). Prints the median per-round ratio rounded / exact.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import sitsformer.models.sits_former as sf
from sitsformer.models import create_sits_former


def batch(b: int, t: int = 50):
    x = torch.randn(b, t, 10, 5, 5)
    mask = torch.rand(b, t) > 0.2
    return x, mask, torch.arange(1, t + 1).expand(b, t) * 7


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fixed", action="store_true", help="repeat the same batches")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = create_sits_former("sitsformer_original", num_classes=8, max_seq_len=64)
    opt = torch.optim.AdamW(model.parameters(), 3e-4)
    fixed_train, fixed_infer = [batch(128) for _ in range(4)], [batch(512) for _ in range(3)]

    def train() -> float:
        data = fixed_train if args.fixed else [batch(128) for _ in range(4)]
        start = time.perf_counter()
        for x, mask, doy in data:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(x, mask, doy).float().logsumexp(-1).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
        return 4 * 128 / (time.perf_counter() - start)

    def infer() -> float:
        data = fixed_infer if args.fixed else [batch(512) for _ in range(3)]
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for x, mask, doy in data:
                model(x, mask, doy)
        return 3 * 512 / (time.perf_counter() - start)

    rates = {(case, bits): [] for case in ("train", "infer") for bits in (5, 64)}
    for r in range(args.rounds + 1):
        for bits in ((5, 64) if r % 2 == 0 else (64, 5)):  # 64 bits: exact counts
            sf.PACK_BITS = bits
            got = train(), infer()
            if r:  # round 0 warms up
                rates["train", bits].append(got[0])
                rates["infer", bits].append(got[1])
    sf.PACK_BITS = 5
    for case in ("train", "infer"):
        ratio = statistics.median(a / b for a, b in zip(rates[case, 5], rates[case, 64]))
        print(f"{case} bf16: rounded {statistics.median(rates[case, 5]):.1f} samples/s, exact "
              f"{statistics.median(rates[case, 64]):.1f}, ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
