"""One speed lever at a time: ``sitsformer_original`` with the lever off against on, interleaved.

Same GENERATED batches as ``bench_vs_original.py`` (training batch 128, inference batch 512,
T = 50, 10 bands, 5x5, ~20 % padded dates). For every case (training step / inference, fp32 /
bf16 autocast) the two settings' calls alternate one by one (the order flipped every round) in
this one process; printed are the samples/s of each and the median of the per-round speed-ups
(time off / time on).

Levers:

- ``pack``: ``model.set_token_packing(False)`` (the padded batch) against ``True`` (only the valid
  dates are embedded, normed, projected and passed through the MLPs).
- ``dropout-mask``: dropout saving its weights (0 or the keep scale, in the activation's dtype:
  the earlier code, re-created here as ``_SaveWeights``) against saving the bool keep mask.

Usage::

    python benchmarks/bench_levers.py pack --pairs 8
    python benchmarks/bench_levers.py pack --cases train-bf16 --pad 0.5
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
from pathlib import Path
from typing import Callable, Iterator

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


Context = Callable[[], contextlib.AbstractContextManager[None]]


def _pack(model: SITSFormer, on: bool) -> Context:
    model.set_token_packing(on)
    return contextlib.nullcontext


class _SaveWeights(torch.autograd.Function):
    """The earlier dropout backward: the weights ``keep * scale`` in x's dtype are saved."""

    @staticmethod
    def forward(ctx, x, keep, scale):  # type: ignore[no-untyped-def]
        weights = keep.to(x.dtype).mul_(scale)
        ctx.save_for_backward(weights)
        return x.mul(weights)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (weights,) = ctx.saved_tensors
        return grad.mul(weights), None, None


@contextlib.contextmanager
def _weights_saved() -> Iterator[None]:
    from sitsformer.layers import dropout as mod

    old, mod._ApplyMask = mod._ApplyMask, _SaveWeights
    try:
        yield
    finally:
        mod._ApplyMask = old


def _dropout_mask(model: SITSFormer, on: bool) -> Context:
    return contextlib.nullcontext if on else _weights_saved


# A lever sets a model up (off / on) and returns the context (factory) its calls run in.
LEVERS: dict[str, Callable[[SITSFormer, bool], Context]] = {
    "pack": _pack, "dropout-mask": _dropout_mask}


def _within(context: Context, fn: Callable[[], None]) -> Callable[[], None]:
    def call() -> None:
        with context():
            fn()
    return call


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
    models, contexts = {}, {}
    for on in (False, True):
        m = copy.deepcopy(base)
        contexts["on" if on else "off"] = LEVERS[args.lever](m, on)
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
        fns = {k: _within(contexts[k], make("sitsformer", m, batch, dtype))
               for k, m in models.items()}
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
