"""Training speed on the real Victoria Sentinel-2 pixel set (IGARSS 2019, 800 pixels, 73 dates).

Epoch time and samples/s of the default pixel recipe (the shipped ``victoria_pixel`` config)
in fp32 and bf16 (autocast) on this machine, in one run. Accuracy beside a random forest is
``benchmarks/bench_accuracy.py`` (``sitsformer benchmark``).

Usage::

    python benchmarks/bench_victoria.py                   # 3 timed epochs per precision
    python benchmarks/bench_victoria.py --timing-epochs 1 --threads 1

Results are printed and written to ``--output`` (``bench_victoria.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from sitsformer.training.benchmark import DEFAULT_SETS, recipe_without_data
from sitsformer.training.config import load_config
from sitsformer.training.experiment import run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timing-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--output", default="runs/bench_victoria")
    parser.add_argument("overrides", nargs="*", help="extra config overrides")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bset = DEFAULT_SETS["victoria_upstream"]
    _, recipe = recipe_without_data(None)
    out_dir = Path(args.output)
    common = [f"data.source={bset.resolved_source()}", "data.split=upstream",
              *[f"data.options.{k}={json.dumps(v)}" for k, v in bset.options.items()],
              f"logging.run_dir={out_dir}", "logging.plots=false", "logging.tensorboard=false",
              f"train.epochs={args.timing_epochs}", *args.overrides]
    report: dict = {"source": str(bset.resolved_source()), "threads": torch.get_num_threads(),
                    "config": common, "speed": {}}
    for precision in ("fp32", "bf16"):
        cfg = load_config(None, [*common, f"train.precision={precision}",
                                 f"logging.name=speed_{precision}"], base=recipe)
        res = run_experiment(cfg)
        hist = res["history"][1:] or res["history"]  # first epoch includes warm-up effects
        report["speed"][precision] = {
            "epoch_time_s": float(np.mean([h["epoch_time_s"] for h in hist])),
            "samples_per_s": float(np.mean([h["samples_per_s"] for h in hist])),
            "train_samples": res["data"]["split_sizes"]["train"],
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_victoria.json").write_text(json.dumps(report, indent=2))
    print(f"Victoria S2 pixels, torch threads={report['threads']}")
    for p, s in report["speed"].items():
        print(f"  {p}: {s['epoch_time_s']:.2f} s/epoch, {s['samples_per_s']:.0f} samples/s "
              f"({s['train_samples']} train samples)")
    fp32, bf16 = (report["speed"][p]["samples_per_s"] for p in ("fp32", "bf16"))
    print(f"  bf16 / fp32 speed ratio: {bf16 / fp32:.2f}")
    print(f"written {out_dir / 'bench_victoria.json'}")


if __name__ == "__main__":
    main()
