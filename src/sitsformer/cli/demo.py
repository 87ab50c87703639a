"""``sitsformer demo``: train and test a small model on GENERATED demo data (about a minute).

The data is synthetic (``sitsformer.data.make_demo_data``: class-specific seasonal curves over
10 Sentinel-2 bands, irregular dates, clouds); it checks the whole pipeline anywhere, without
downloads. It says nothing about accuracy on real land cover. The recipe is the shipped ``demo``
config (``sitsformer config show demo``), so ``sitsformer train --config demo`` trains the same.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def run(args: argparse.Namespace) -> int:
    from sitsformer.cli.train import print_summary
    from sitsformer.configs import shipped_configs
    from sitsformer.training.config import ConfigError, load_config
    from sitsformer.training.experiment import run_experiment

    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    overrides.append(f"logging.run_dir={args.output}")
    try:
        # the shipped `demo` config: `sitsformer train --config demo` is the same run
        cfg = load_config(shipped_configs()["demo"], overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.quiet:
        cfg.logging.progress = False
    print("sitsformer demo: training on GENERATED synthetic demo data (not real imagery; "
          f"{cfg.data.demo_samples} pixel time series, {cfg.data.demo_classes} classes)")
    out = run_experiment(cfg)
    print_summary(out)
    print("note: the demo data is GENERATED; these numbers only show the pipeline works.")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="train + test on GENERATED demo data (about a minute on a laptop CPU)",
        description="Train a small SITS-Former on generated demo data, evaluate it on the "
        "test split and print where the run, its metrics and plots are.")
    p.add_argument("--epochs", type=int, help="number of epochs (default 12)")
    p.add_argument("--output", default="runs", help="parent folder of the run (default runs/)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. model.embed_dim=32")
    p.set_defaults(func=run)
