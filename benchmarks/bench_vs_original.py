"""The original SITS-Former code against ``sitsformer_original``: same sizes, one process, interleaved.

``--orig PATH`` is the ``code/`` folder of a clone of https://github.com/linlei1214/SITS-Former;
its ``model`` package (``BERT`` + ``BERTClassification``) is imported from there at run time and
built with the published settings (10 bands, 5x5 patches, width 256, 3 layers, 8 heads, dropout
0.1). ``sitsformer_original`` is built with the same sizes. Both see the same GENERATED batch
(``--batch`` 128 for training, ``--infer-batch`` 512 for inference, T = 50, 10 bands, 5x5,
about 20 % of the dates padded at the end of each series).

Cases: training steps (forward, cross-entropy, ``zero_grad``, backward, AdamW) and eval-mode
inference (``torch.no_grad``), each in fp32 and under bf16 autocast. Within a case the two
models' calls alternate one by one (the order flipped every pair), so both see the same machine
load; the ratio reported is the median of the per-pair ratios (time of the original over time
of sitsformer). The training rows also give sitsformer's fraction of the measured matmul peak of
that precision (useful FLOPs from ``FlopCounterMode``, the conv3d stem counted in its reference
form; peak = best 2048^3 ``torch.mm`` measured in the same run).

``--pixel`` adds the pixel model (``sitsformer_pixel`` as in configs/victoria_pixel.yaml: width
128, 3 layers, 4 heads, batch 32, T = 73, every date valid), training steps in fp32 against bf16,
interleaved.

Usage::

    python benchmarks/bench_vs_original.py --orig /tmp/sits_former_orig/code
    python benchmarks/bench_vs_original.py --orig PATH --pairs 12 --cases train-bf16,infer-bf16
    python benchmarks/bench_vs_original.py --orig PATH --variant sitsformer_original_exact
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_step import count_flops, matmul_peak  # noqa: E402

from sitsformer.models import create_sits_former  # noqa: E402

CASES = ("train-fp32", "train-bf16", "infer-fp32", "infer-bf16")


# ------------------------------------------------------------------------- timing helpers
def paired_times(fns: dict[str, Callable[[], Any]], pairs: int, warmup: int = 1
                 ) -> dict[str, list[float]]:
    """Seconds per call of each function; after ``warmup`` calls of each, the functions are
    called in turn ``pairs`` times, the order reversed every other round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for i in range(pairs):
        for name in (names if i % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def pair_ratio(slow: list[float], fast: list[float]) -> float:
    """Median over rounds of ``slow[i] / fast[i]`` (> 1: ``fast`` is faster)."""
    if len(slow) != len(fast) or not slow:
        raise ValueError(f"need two equally long, non-empty timing lists, got {len(slow)} "
                         f"and {len(fast)}")
    return statistics.median(s / f for s, f in zip(slow, fast))


def throughput(times: list[float], batch: int) -> float:
    """Samples per second of the median call."""
    return batch / statistics.median(times)


# ---------------------------------------------------------------------------------- models
def load_original(path: str | Path, num_classes: int) -> torch.nn.Module:
    """``BERTClassification(BERT(10, 256, 3, 8, 0.1), num_classes)`` from the original code."""
    path = Path(path).resolve()
    if not (path / "model" / "bert.py").is_file():
        raise SystemExit(f"--orig must be the code/ folder of the SITS-Former clone (with "
                         f"model/bert.py); {path / 'model' / 'bert.py'} does not exist")
    sys.path.insert(0, str(path))
    try:
        orig = importlib.import_module("model")
    finally:
        sys.path.remove(str(path))
    bert = orig.BERT(num_features=10, hidden=256, n_layers=3, attn_heads=8, dropout=0.1)
    return orig.BERTClassification(bert, num_classes)


def make_batch(batch: int, t: int, num_classes: int, pad_fraction: float = 0.2,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """GENERATED batch: ``(B, T, 10, 5, 5)`` values, sample lengths spread around
    ``(1 - pad_fraction) * T`` (between ``1 - 2 * pad_fraction`` and all of T), sorted days of
    year at the valid dates, 0 at padded ones."""
    g = torch.Generator().manual_seed(seed)
    lo = max(1, round(t * (1 - 2 * pad_fraction)))
    lengths = torch.randint(lo, t + 1, (batch,), generator=g)
    mask = torch.arange(t)[None, :] < lengths[:, None]
    doy = torch.sort(torch.randint(1, 366, (batch, t), generator=g), dim=1).values * mask
    return dict(sequence=torch.rand(batch, t, 10, 5, 5, generator=g), mask=mask, doy=doy,
                label=torch.randint(0, num_classes, (batch,), generator=g))


def _autocast(dtype: str) -> contextlib.AbstractContextManager[Any]:
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _call(kind: str, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    if kind == "orig":
        return model(batch["sequence"], batch["doy"].long(), batch["mask"].long())
    return model(batch["sequence"], batch["mask"], doy=batch["doy"])


def make_train_step(kind: str, model: torch.nn.Module, batch: dict[str, torch.Tensor],
                    dtype: str) -> Callable[[], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        model.train()
        with _autocast(dtype):
            logits = _call(kind, model, batch)
            loss = F.cross_entropy(logits.float(), batch["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def make_infer(kind: str, model: torch.nn.Module, batch: dict[str, torch.Tensor],
               dtype: str) -> Callable[[], None]:
    def step() -> None:
        model.eval()
        with torch.no_grad(), _autocast(dtype):
            _call(kind, model, batch)
    return step


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orig", required=True, help="the code/ folder of the SITS-Former clone")
    parser.add_argument("--cases", default=",".join(CASES), help=f"subset of {CASES}")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--infer-batch", type=int, default=512)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=8, help="timed rounds per case")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--pixel", action="store_true", help="also the pixel model fp32 vs bf16")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--variant", default="sitsformer_original",
                        help="sitsformer's side: sitsformer_original (default) or "
                        "sitsformer_original_exact (the original's exact function)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    num_classes = 8
    torch.manual_seed(0)
    models = {"orig": load_original(args.orig, num_classes),
              "sitsformer": create_sits_former(args.variant, num_classes=num_classes)}
    n_orig = sum(p.numel() for p in models["orig"].parameters())
    n_ours = sum(p.numel() for p in models["sitsformer"].parameters())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, T {args.seq_len}; "
          f"parameters: original {n_orig:,}, sitsformer {n_ours:,}", flush=True)
    train_batch = make_batch(args.batch, args.seq_len, num_classes)
    infer_batch = make_batch(args.infer_batch, args.seq_len, num_classes, seed=1)
    print(f"padded dates: train {1 - train_batch['mask'].float().mean():.1%}, "
          f"infer {1 - infer_batch['mask'].float().mean():.1%}", flush=True)
    flops = count_flops(models["sitsformer"], train_batch)
    rows = []
    for case in [c for c in args.cases.split(",") if c]:
        if case not in CASES:
            raise SystemExit(f"unknown case {case!r}; expected a subset of {CASES}")
        what, dtype = case.split("-")
        make, batch = ((make_train_step, train_batch) if what == "train"
                       else (make_infer, infer_batch))
        fns = {k: make(k, m, batch, dtype) for k, m in models.items()}
        peaks = [matmul_peak(torch.device("cpu"), dtype)] if what == "train" else []
        times = paired_times(fns, args.pairs, args.warmup)
        if what == "train":
            peaks.append(matmul_peak(torch.device("cpu"), dtype))
        n = batch["sequence"].shape[0]
        row = dict(case=case, orig=throughput(times["orig"], n),
                   ours=throughput(times["sitsformer"], n),
                   ratio=pair_ratio(times["orig"], times["sitsformer"]),
                   peak=(flops * n / statistics.median(times["sitsformer"]) / max(peaks)
                         if peaks else None))
        rows.append(row)
        print(f"  {case}: per-round ratios "
              f"{[round(o / s, 2) for o, s in zip(times['orig'], times['sitsformer'])]}",
              flush=True)
    print(f"\n{'case':<12}{'original/s':>12}{'sitsformer/s':>14}{'ratio':>8}{'of peak':>9}")
    print("-" * 55)
    for r in rows:
        peak = f"{100 * r['peak']:.1f}%" if r["peak"] is not None else "-"
        print(f"{r['case']:<12}{r['orig']:>12.1f}{r['ours']:>14.1f}{r['ratio']:>8.2f}{peak:>9}")
    if args.pixel:
        pixel_fp32_vs_bf16(args.pairs, args.warmup)
    return 0


def pixel_fp32_vs_bf16(pairs: int, warmup: int, batch: int = 32, t: int = 73) -> float:
    """Training steps of the Victoria pixel model in fp32 and bf16, interleaved; prints and
    returns the median per-round ratio (fp32 time over bf16 time: > 1 means bf16 is faster)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    data = dict(sequence=torch.randn(batch, t, 10, generator=g),
                mask=torch.ones(batch, t, dtype=torch.bool),
                doy=torch.arange(1, t + 1).expand(batch, t) * 5 % 366,
                label=torch.randint(0, 8, (batch,), generator=g))
    fns = {}
    for dtype in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = create_sits_former("sitsformer_pixel", num_classes=8, embed_dim=128,
                                   num_layers=3, num_heads=4, dropout=0.2)
        fns[dtype] = make_train_step("sitsformer", model, data, dtype)
    times = paired_times(fns, pairs, warmup)
    ratio = pair_ratio(times["fp32"], times["bf16"])
    print(f"\npixel model (batch {batch}, T {t}) training: fp32 "
          f"{throughput(times['fp32'], batch):.1f}/s, bf16 {throughput(times['bf16'], batch):.1f}/s,"
          f" bf16 speed-up {ratio:.2f} (median of per-round ratios)", flush=True)
    return ratio


if __name__ == "__main__":
    raise SystemExit(main())
