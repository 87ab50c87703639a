"""One speed lever at a time: ``sitsformer_original`` with the lever off against on, interleaved.

Same GENERATED batches as ``bench_vs_original.py`` (training batch 128, inference batch 512,
T = 50, 10 bands, 5x5, ~20 % padded dates). For every case (training step / inference, fp32 /
bf16 autocast) the two settings' calls alternate one by one (the order flipped every round) in
this one process; printed are the samples/s of each and the median of the per-round speed-ups
(time off / time on).

Levers:

- ``pack``: ``model.set_token_packing(False)`` (the padded batch) against ``True`` (only the valid
  dates are embedded, normed, projected and passed through the MLPs).

Usage::

    python benchmarks/bench_levers.py pack --pairs 8
    python benchmarks/bench_levers.py pack --cases train-bf16 --pad 0.5
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_original import (  # noqa: E402
    CASES,
    make_batch,
    make_infer,
    make_train_step,
    pair_ratio,
    paired_times,
    throughput,
)

from sitsformer.models import SITSFormer, create_sits_former  # noqa: E402


def _pack(model: SITSFormer, on: bool) -> None:
    model.set_token_packing(on)


LEVERS: dict[str, Callable[[SITSFormer, bool], None]] = {"pack": _pack}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lever", choices=sorted(LEVERS))
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--infer-batch", type=int, default=512)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--pad", type=float, default=0.2, help="mean fraction of padded dates")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    base = create_sits_former("sitsformer_original", num_classes=8)
    models = {}
    for on in (False, True):
        m = copy.deepcopy(base)
        LEVERS[args.lever](m, on)
        models["on" if on else "off"] = m
    batches = {"train": make_batch(args.batch, args.seq_len, 8, args.pad),
               "infer": make_batch(args.infer_batch, args.seq_len, 8, args.pad, seed=1)}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, lever {args.lever}, "
          f"padded dates {1 - batches['train']['mask'].float().mean():.1%}", flush=True)
    rows = []
    for case in [c for c in args.cases.split(",") if c]:
        what, dtype = case.split("-")
        make = make_train_step if what == "train" else make_infer
        batch = batches[what]
        fns = {k: make("sitsformer", m, batch, dtype) for k, m in models.items()}
        times = paired_times(fns, args.pairs, args.warmup)
        n = batch["sequence"].shape[0]
        rows.append((case, throughput(times["off"], n), throughput(times["on"], n),
                     pair_ratio(times["off"], times["on"])))
        print(f"  {case}: per-round speed-ups "
              f"{[round(a / b, 2) for a, b in zip(times['off'], times['on'])]}", flush=True)
    print(f"\n{'case':<12}{'off/s':>9}{'on/s':>9}{'speed-up':>10}")
    for case, off, on, ratio in rows:
        print(f"{case:<12}{off:>9.1f}{on:>9.1f}{ratio:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
