"""``sitsformer pretrain --config FILE.yaml [section.key=value ...]``: self-supervised
pre-training by masked-date reconstruction.

The config is a ``sitsformer train`` config (model, data, optim, schedule, train, logging) plus
a ``pretrain`` section (``target``: ``center`` | ``patch``, ``hide_ratio``, ``baseline``,
``eval_seed``). ``data.source`` needs no labels (a GeoTIFF folder, an EOPatch, a sample store,
a CSV table ...). Under ``torchrun`` it runs with DDP; ``--resume RUN/last.pt`` continues a
run. Prints the held-out reconstruction error next to the linear-interpolation baseline.
Exit codes: 0 done, 1 error in the config or data or a non-finite loss, 130/143 stopped by a
signal after saving a resumable checkpoint.
"""

from __future__ import annotations

import argparse
from typing import Any


def print_summary(out: dict[str, Any]) -> None:
    print(f"run folder:      {out['run_dir']}")
    print(f"status:          {out['status']} after {out['epochs']} epoch(s)")
    print(f"checkpoints:     {out['best_checkpoint']} (best), {out['last_checkpoint']} (last)")
    if "test" in out:
        t = out["test"]
        print(f"held-out test:   reconstruction MSE {t.get('test_mse', float('nan')):.4f} "
              f"(MAE {t.get('test_mae', float('nan')):.4f}) vs interpolation baseline "
              f"MSE {t.get('test_baseline_mse', float('nan')):.4f} "
              f"(MAE {t.get('test_baseline_mae', float('nan')):.4f}); "
              f"skill {t.get('test_skill', float('nan')):+.3f} over "
              f"{int(t.get('test_positions', 0))} hidden values")
    print("fine-tune with:  sitsformer finetune --config FILE "
          f"--pretrained {out['best_checkpoint']}")


def run(args: argparse.Namespace) -> int:
    from sitsformer.cli.train import run_config_command
    from sitsformer.training.pretrain import (
        PretrainExperimentConfig,
        load_experiment_config,
        run_pretraining,
    )

    return run_config_command(
        args, lambda: load_experiment_config(PretrainExperimentConfig, args.config,
                                             args.overrides),
        lambda cfg: run_pretraining(cfg, resume=args.resume), print_summary,
        "sitsformer pretrain --config {run_dir}/config.yaml --resume {last}")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "pretrain", help="self-supervised pre-training (masked-date reconstruction)",
        description="Pre-train a SITS-Former encoder without labels: hide a share of the valid "
        "dates, replace them with a learned mask token and regress the hidden observations. "
        "The config is a train config plus a 'pretrain' section; override any key as "
        "section.key=value (e.g. pretrain.hide_ratio=0.3 pretrain.target=patch).")
    p.add_argument("--config", "-c", help="YAML experiment file or shipped config name "
                   "(`sitsformer config list`; defaults in code otherwise)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides, e.g. pretrain.target=patch train.epochs=50")
    p.add_argument("--resume", help="checkpoint to continue from (e.g. RUN/last.pt)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config, exit")
    p.add_argument("--json", action="store_true", help="also print a JSON summary line")
    p.set_defaults(func=run)
