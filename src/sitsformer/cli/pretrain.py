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

from sitsformer.cli.train import add_run_arguments


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
    from sitsformer.training.config import PretrainExperimentConfig, load_config
    from sitsformer.training.pretrain import run_pretraining

    return run_config_command(
        args, lambda: load_config(args.config, args.overrides, cls=PretrainExperimentConfig),
        lambda cfg, run_dir: run_pretraining(cfg, resume=args.resume, run_dir=run_dir,
                                 allow_changes=args.allow_changes),
        print_summary,
        "sitsformer pretrain --config {run_dir}/config.yaml --resume {last}")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "pretrain", help="self-supervised pre-training (masked-date reconstruction)",
        description="Pre-train a SITS-Former encoder without labels: hide a share of the valid "
        "dates, replace them with a learned mask token and regress the hidden observations. "
        "The config is a train config plus a 'pretrain' section; override any key as "
        "section.key=value (e.g. pretrain.hide_ratio=0.3 pretrain.target=patch).")
    add_run_arguments(p, "pretrain.target=patch train.epochs=50")
    p.set_defaults(func=run)
