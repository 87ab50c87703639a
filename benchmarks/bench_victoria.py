"""Benchmark on the real Victoria Sentinel-2 pixel set (IGARSS 2019, 800 pixels, 73 dates, 8 classes).

Measures, in one script and on the same splits:

* speed: training epoch time and samples/s of the SITS-Former pixel model in fp32 and bf16
  (autocast) on this machine;
* accuracy: test overall accuracy, Cohen's kappa and macro-F1 of SITS-Former on the upstream
  train/test split (which leaks: 38 polygons have pixels on both sides) and on a grouped split
  (whole polygons per side), beside a scikit-learn random forest with 500 trees on all
  band x date values (trained on train + validation pixels, which it needs no validation for).

Usage::

    python benchmarks/bench_victoria.py                  # full run (several minutes on 2 cores)
    python benchmarks/bench_victoria.py --epochs 5 --timing-epochs 1   # quick check

Results are printed as a table and written to ``--out`` (``bench_victoria.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sitsformer.data import DataModule
from sitsformer.training.config import load_config
from sitsformer.training.experiment import run_experiment

# Defaults chosen on this set (see docs/training.md): a 3-layer pixel transformer, inputs / 10000
# then standardised per band with train statistics, label smoothing, AdamW + warm-up + cosine.
BASE = [
    "model.variant=sitsformer_pixel", "model.embed_dim=128", "model.num_layers=3",
    "model.num_heads=4", "model.dropout=0.2",
    # the upstream dates are unknown: state a regular 5-day grid (doy = 1, 6, 11, ...)
    "data.options.start_date='2017-01-01'", "data.options.interval_days=5",
    "data.batch_size=32", "data.val_fraction=0.15", "data.test_fraction=0.3", "data.seed=0",
    "optim.lr=1e-3", "optim.weight_decay=0.05",
    "schedule.type=cosine", "schedule.warmup_epochs=5", "schedule.min_lr=1e-5",
    "loss.label_smoothing=0.1", "train.monitor=val_loss",
    "logging.tensorboard=false", "logging.progress=false",
]


def shared_npz() -> Path:
    try:
        from sitsformer.data import shared_data_dir  # type: ignore[attr-defined]

        root = shared_data_dir()
    except ImportError:
        root = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return root / "s2_victoria_igarss2019" / "s2_victoria_igarss2019.npz"


def rf_scores(source: Path, split: str, seed: int, test_fraction: float,
              val_fraction: float) -> dict[str, float]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    cfg = load_config(overrides=[*BASE, f"data.source={source}", f"data.split={split}",
                                 f"data.test_fraction={test_fraction}",
                                 f"data.val_fraction={val_fraction}", f"data.seed={seed}"])
    data = DataModule.from_config(cfg.data).read()
    idx = data.splits
    x = np.stack([np.asarray(s["sequence"]).reshape(-1) for s in data.samples])  # (N, T*C)
    fit = np.concatenate([idx["train"], idx["val"]])
    t0 = time.perf_counter()
    rf = RandomForestClassifier(n_estimators=500, n_jobs=-1, random_state=seed)
    rf.fit(x[fit], data.labels[fit])
    pred = rf.predict(x[idx["test"]])
    y = data.labels[idx["test"]]
    return {"oa": accuracy_score(y, pred), "kappa": cohen_kappa_score(y, pred),
            "macro_f1": f1_score(y, pred, average="macro"), "fit_s": time.perf_counter() - t0,
            "n_fit": int(len(fit)), "n_test": int(len(y))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--timing-epochs", type=int, default=3)
    parser.add_argument("--splits", nargs="+", default=["upstream", "group"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="precision of the accuracy runs")
    parser.add_argument("--skip-speed", action="store_true", help="only the accuracy runs")
    parser.add_argument("--out", default="runs/bench_victoria")
    parser.add_argument("overrides", nargs="*", help="extra config overrides")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    source = shared_npz()
    out_dir = Path(args.out)
    common = [*BASE, f"data.source={source}", f"logging.run_dir={out_dir}", *args.overrides]
    report: dict = {"source": str(source), "threads": torch.get_num_threads(),
                    "precision_accuracy_runs": args.precision,
                    "config": common, "speed": {}, "accuracy": {}}

    for precision in () if args.skip_speed else ("fp32", "bf16"):  # speed: short runs
        cfg = load_config(overrides=[*common, "data.split=upstream",
                                     f"train.epochs={args.timing_epochs}",
                                     f"train.precision={precision}", "logging.plots=false",
                                     f"logging.name=speed_{precision}"])
        res = run_experiment(cfg)
        hist = res["history"][1:] or res["history"]  # first epoch includes warm-up effects
        report["speed"][precision] = {
            "epoch_time_s": float(np.mean([h["epoch_time_s"] for h in hist])),
            "samples_per_s": float(np.mean([h["samples_per_s"] for h in hist])),
            "train_samples": res["data"]["split_sizes"]["train"],
        }
        print(f"speed {precision}: {report['speed'][precision]}", flush=True)

    for split in args.splits:
        cfg = load_config(overrides=[*common, f"data.split={split}", f"train.epochs={args.epochs}",
                                     f"train.precision={args.precision}",
                                     f"logging.name=acc_{split}"])
        t0 = time.perf_counter()
        res = run_experiment(cfg)
        test = res["test"]
        rf = rf_scores(source, split, cfg.data.seed, cfg.data.test_fraction,
                       cfg.data.val_fraction)
        report["accuracy"][split] = {
            "sitsformer": {"oa": test["test_oa"], "kappa": test["test_kappa"],
                           "macro_f1": test["test_macro_f1"], "best_epoch": res["best_epoch"],
                           "train_s": time.perf_counter() - t0, "run_dir": res["run_dir"]},
            "random_forest_500": rf, "split_sizes": res["data"]["split_sizes"],
        }
        print(f"{split}: {json.dumps(report['accuracy'][split])}", flush=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_victoria.json").write_text(json.dumps(report, indent=2))
    print(f"\nVictoria S2 pixels ({source.name}), torch threads={report['threads']}")
    for p, s in report["speed"].items():
        print(f"  {p}: {s['epoch_time_s']:.2f} s/epoch, {s['samples_per_s']:.0f} samples/s "
              f"({s['train_samples']} train samples)")
    print(f"  {'split':10s} {'model':14s} {'OA':>6s} {'kappa':>6s} {'mF1':>6s}")
    for split, acc in report["accuracy"].items():
        for name, key in (("SITS-Former", "sitsformer"), ("RF-500", "random_forest_500")):
            r = acc[key]
            print(f"  {split:10s} {name:14s} {r['oa']:6.4f} {r['kappa']:6.4f} {r['macro_f1']:6.4f}")
    print(f"written {out_dir / 'bench_victoria.json'}")


if __name__ == "__main__":
    main()
