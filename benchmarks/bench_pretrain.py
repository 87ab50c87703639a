"""Does self-supervised pre-training help when labels are few? (real data, grouped splits)

Data: the Victoria Sentinel-2 pixel time series (800 pixels, 73 dates, 10 bands, 8 classes,
182 polygons) read from the raw CSV tables with ``sitsformer.data.open_source``.

1. Pre-train a SITS-Former encoder by masked-date reconstruction on every sample *without
   its label* (``--holdout F`` keeps a share F of the polygons out, to measure the
   reconstruction error against linear interpolation between the neighbouring visible dates).
2. Split the labelled pixels by polygon (train / val / test, no polygon on two sides), keep
   5 %, 10 %, 25 % and 100 % of the training labels (per class, same subset for both arms) and
   train (a) the pre-trained encoder with a fresh head and (b) the same model from scratch,
   with the same recipe and the same number of optimizer updates, for ``--seeds`` training
   seeds (the split and the label subsets are the same for every seed); the test checkpoint
   (``--test-checkpoint``: the best epoch on the validation loss, or the last one, with
   ``--ema`` the weight average) is evaluated on the test polygons. The table gives the mean
   +- std over the seeds and the gain of pre-training.

The unlabelled pre-training pool contains the test pixels (without labels): the usual
transductive setting of SITS pre-training, where every pixel of the area is available
unlabelled. Run ``python benchmarks/bench_pretrain.py`` (about 20-40 minutes with 3 seeds on a
shared 2-core CPU; ``--quick`` for a smoke run); prints OA, kappa and macro-F1 per label budget.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sitsformer.data import shared_data_dir
from sitsformer.training.config import (
    FinetuneExperimentConfig,
    PretrainExperimentConfig,
    load_config,
)
from sitsformer.training.finetune import run_finetuning
from sitsformer.training.pretrain import run_pretraining


def model_overrides(args: argparse.Namespace) -> list[str]:
    return ["model.variant=sitsformer_pixel", f"model.embed_dim={args.embed_dim}",
            f"model.num_layers={args.layers}", f"model.num_heads={args.heads}",
            "model.dropout=0.1"]


def common(args: argparse.Namespace, out: Path, name: str) -> list[str]:
    bands = ["data.options.bands=s2"] if not str(args.source).endswith(".npz") else []
    return [f"data.source={args.source}", *bands, "data.scale=10000",
            f"data.batch_size={args.batch}",
            "train.precision=fp32", f"train.threads={args.threads}", "train.device=cpu",
            f"logging.run_dir={out}", f"logging.name={name}", "logging.tensorboard=false",
            "logging.plots=false", "logging.progress=false", "schedule.type=cosine",
            "schedule.warmup_epochs=1"]


def pretrain(args: argparse.Namespace, out: Path) -> dict:
    overrides = [*common(args, out, "pretrain"), *model_overrides(args),
                 "data.split=group" if args.holdout else "data.split=random",
                 "data.val_fraction=0.0", f"data.test_fraction={args.holdout}",
                 f"train.epochs={args.pretrain_epochs}", f"optim.lr={args.pretrain_lr}",
                 "optim.weight_decay=0.05", "pretrain.target=center",
                 f"pretrain.hide_ratio={args.hide_ratio}"]
    cfg = load_config(None, overrides, cls=PretrainExperimentConfig)
    t0 = time.perf_counter()
    res = run_pretraining(cfg)
    res["seconds"] = time.perf_counter() - t0
    return res


def train_pool_size(args: argparse.Namespace, out: Path) -> int:
    """Training pixels before the label budget (the same grouped split as fine-tuning)."""
    from sitsformer.data import DataModule

    cfg = load_config(None, [
        *common(args, out, "split"), "data.split=group", "data.val_fraction=0.15",
        "data.test_fraction=0.25"], cls=FinetuneExperimentConfig)
    return DataModule.from_config(cfg.data).read().train_pool_size


def finetune(args: argparse.Namespace, out: Path, fraction: float, ckpt: str | None,
             train_pool: int, seed: int = 0) -> dict:
    n_train = max(1, round(fraction * train_pool))
    steps = math.ceil(n_train / args.ft_batch)
    # the same number of updates for both arms; few labels -> many short epochs, capped
    # because every epoch also validates and writes checkpoints
    epochs = min(args.max_epochs, max(args.min_epochs, math.ceil(args.updates / steps)))
    name = f"{'pre' if ckpt else 'scratch'}_{int(round(fraction * 100)):03d}_seed{seed}"
    overrides = [*common(args, out, name), *model_overrides(args),
                 f"data.batch_size={args.ft_batch}",
                 "data.split=group", "data.val_fraction=0.15", "data.test_fraction=0.25",
                 f"train.epochs={epochs}", f"optim.lr={args.lr}", "optim.weight_decay=0.05",
                 f"finetune.label_fraction={fraction}", "train.monitor=val_loss",
                 f"train.seed={seed}", f"train.test_checkpoint={args.test_checkpoint}"]
    if args.ema:
        overrides.append(f"train.ema_decay={args.ema}")
    if ckpt:
        overrides += [f"optim.layer_decay={args.layer_decay}",
                      f"finetune.freeze_epochs={args.freeze_epochs}"]
    cfg = load_config(None, overrides, cls=FinetuneExperimentConfig)
    t0 = time.perf_counter()
    res = run_finetuning(cfg, ckpt)
    res["seconds"] = time.perf_counter() - t0
    res["epochs_run"] = epochs
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default=str(shared_data_dir() / "s2_victoria_igarss2019" / "raw"))
    p.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    p.add_argument("--fractions", default="0.05,0.1,0.25,1.0")
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ft-batch", type=int, default=16, help="fine-tuning batch size")
    p.add_argument("--pretrain-epochs", type=int, default=200)
    p.add_argument("--pretrained", default=None,
                   help="reuse the best.pt of an earlier pre-training run of this script "
                   "(its test_metrics.json gives the reconstruction numbers)")
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--hide-ratio", type=float, default=0.75,
                   help="share of the valid dates hidden per sample in pre-training")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--updates", type=int, default=400, help="optimizer updates per fine-tuning")
    p.add_argument("--min-epochs", type=int, default=10)
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--layer-decay", type=float, default=0.8)
    p.add_argument("--freeze-epochs", type=int, default=0)
    p.add_argument("--holdout", type=float, default=0.0,
                   help="share of polygons held out of pre-training to measure reconstruction "
                   "(default 0: pre-train on every sample, labels ignored)")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds 0..N-1 per arm")
    p.add_argument("--ema", type=float, default=None,
                   help="train.ema_decay of both arms (weight averaging)")
    p.add_argument("--test-checkpoint", choices=("best", "last"), default="best",
                   help="the checkpoint scored on the test split")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 avoids oversubscription on a shared 2-core machine)")
    p.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.pretrain_epochs, args.updates, args.min_epochs, args.max_epochs = 2, 10, 1, 2
        args.fractions, args.seeds = "0.1,1.0", 1
    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_pretrain_"))
    fractions = [float(f) for f in args.fractions.split(",")]
    print(f"source: {args.source}\nruns:   {out}\nmodel:  width {args.embed_dim}, "
          f"{args.layers} layers, {args.heads} heads; torch threads {args.threads}", flush=True)

    t_start = time.perf_counter()
    if args.pretrained:
        from sitsformer.models import load_checkpoint

        run = Path(args.pretrained).parent
        ck = load_checkpoint(args.pretrained)
        pre = {"best_checkpoint": args.pretrained, "data": ck["data_meta"],
               "test": json.loads((run / "test_metrics.json").read_text())
               if (run / "test_metrics.json").exists() else None}  # --holdout 0: no test
        print(f"\npre-training: reused {args.pretrained} (epoch {ck['epoch']}, "
              f"{pre['data']['split_sizes']['train']} unlabelled pixels)")
    else:
        pre = pretrain(args, out)
        print(f"\npre-training: {pre['epochs']} epochs on {pre['data']['split_sizes']['train']} "
              f"unlabelled pixels in {pre['seconds']:.0f} s "
              f"({pre['history'][-1]['samples_per_s']:.0f} samples/s in the last epoch)")
    t = pre.get("test")
    if t:
        print(f"held-out reconstruction ({pre['data']['split_sizes']['test']} pixels of unseen "
              f"polygons, {int(t['test_positions'])} hidden values, standardised units):")
        print(f"  model         MSE {t['test_mse']:.4f}  MAE {t['test_mae']:.4f}")
        print(f"  interpolation MSE {t['test_baseline_mse']:.4f}  MAE "
              f"{t['test_baseline_mae']:.4f}  (skill {t['test_skill']:+.3f})", flush=True)

    ckpt = pre["best_checkpoint"]
    pool = train_pool_size(args, out)
    rows = []
    for fraction in fractions:
        for arm, path in (("pretrained", ckpt), ("scratch", None)):
            for seed in range(args.seeds):
                res = finetune(args, out, fraction, path, pool, seed)
                test = res["test"]
                rows.append({"fraction": fraction, "arm": arm, "seed": seed,
                             "labels": res["data"]["split_sizes"]["train"],
                             "epochs": res["epochs_run"],
                             "best_epoch": res["trainer"].best_epoch,
                             "updates": res["trainer"].global_step,
                             "oa": test["test_oa"], "kappa": test["test_kappa"],
                             "macro_f1": test["test_macro_f1"], "seconds": res["seconds"]})
                r = rows[-1]
                print(f"  {fraction:>5.0%} {arm:<10} seed {seed} labels={r['labels']:>3} "
                      f"epochs={r['epochs']:>3} updates={r['updates']:>3} "
                      f"OA={r['oa']:.4f} kappa={r['kappa']:.4f} macroF1={r['macro_f1']:.4f} "
                      f"({r['seconds']:.0f} s)", flush=True)

    print(f"\nsplit sizes (pixels, grouped by polygon): {res['data']['split_sizes']} "
          f"of a {pool}-pixel training pool")

    def stat(fraction: float, arm: str, key: str) -> tuple[float, float]:
        v = np.array([r[key] for r in rows if r["fraction"] == fraction and r["arm"] == arm])
        return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0

    print(f"\nmean +- std over {args.seeds} seed(s)")
    print("| labels | pre-trained OA | macro-F1 | scratch OA | macro-F1 | gain (OA points) |")
    print("|---|---|---|---|---|---|")
    summary = []
    for fraction in fractions:
        n = next(r["labels"] for r in rows if r["fraction"] == fraction)
        (a, sa), (fa, _), (b, sb), (fb, _) = (stat(fraction, "pretrained", "oa"),
                                              stat(fraction, "pretrained", "macro_f1"),
                                              stat(fraction, "scratch", "oa"),
                                              stat(fraction, "scratch", "macro_f1"))
        summary.append({"fraction": fraction, "labels": n, "pretrained_oa": a,
                        "pretrained_oa_std": sa, "scratch_oa": b, "scratch_oa_std": sb,
                        "gain": a - b})
        print(f"| {fraction:.0%} ({n}) | {a:.3f} +- {sa:.3f} | {fa:.3f} | {b:.3f} +- {sb:.3f} "
              f"| {fb:.3f} | {100 * (a - b):+.1f} |")
    total = time.perf_counter() - t_start
    print(f"\ntotal {total:.0f} s")
    (out / "bench_pretrain.json").write_text(json.dumps(
        {"reconstruction": t, "rows": rows, "summary": summary, "seconds": total,
         "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
