"""``sitsformer finetune --config FILE.yaml --pretrained CKPT [section.key=value ...]``:
fine-tune a pre-trained encoder on a labelled source.

The config is a ``sitsformer train`` config plus a ``finetune`` section (``freeze_epochs``,
``label_fraction``, ``use_pretrained_normalization``); layer-wise LR decay is
``optim.layer_decay``. The encoder's settings come from the checkpoint; a band set, date
encoding or architecture that differs is an error naming what differs. Without
``--pretrained`` the same recipe trains from scratch (for comparisons).
Exit codes: 0 done, 1 error (config, data, checkpoint mismatch, non-finite loss), 130/143
stopped by a signal after saving a resumable checkpoint.
"""

from __future__ import annotations

import argparse
from typing import Any

from sitsformer.cli.train import add_run_arguments


def print_summary(out: dict[str, Any]) -> None:
    print(f"run folder:      {out['run_dir']}")
    rep = out.get("pretrained")
    if rep:
        print(f"pre-trained:     {rep['checkpoint']}: {len(rep['loaded'])} encoder tensors "
              f"loaded; new head {rep['missing']}; not used {rep['dropped']}")
    else:
        print("pre-trained:     none (trained from scratch)")
    d = out["data"]
    print(f"labels used:     {d['split_sizes']['train']} of {d['train_pool_size']} training "
          f"samples (label_fraction={d['label_fraction']})")
    print(f"status:          {out['status']} after {out['epochs']} epoch(s)")
    print(f"best checkpoint: {out['best_checkpoint']}")
    if "test" in out:
        t = out["test"]
        shown = " ".join(f"{k[5:]}={t[k]:.4f}" for k in ("test_oa", "test_kappa",
                                                         "test_macro_f1", "test_loss") if k in t)
        print(f"test split:      {shown}")


def run(args: argparse.Namespace) -> int:
    from sitsformer.cli.train import run_config_command
    from sitsformer.training.config import FinetuneExperimentConfig, load_config
    from sitsformer.training.finetune import run_finetuning

    return run_config_command(
        args, lambda: load_config(args.config, args.overrides, cls=FinetuneExperimentConfig),
        lambda cfg, run_dir: run_finetuning(cfg, args.pretrained, resume=args.resume,
                                            run_dir=run_dir,
                                            allow_changes=args.allow_changes), print_summary,
        f"sitsformer finetune --config {{run_dir}}/config.yaml --pretrained {args.pretrained} "
        "--resume {last}")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "finetune", help="fine-tune a pre-trained encoder on labelled data",
        description="Fine-tune a pre-trained SITS-Former encoder: exact weight loading, a "
        "fresh head for the new classes, optional frozen encoder for the first epochs "
        "(finetune.freeze_epochs) and layer-wise LR decay (optim.layer_decay).")
    p.add_argument("--pretrained", "-p", help="checkpoint from 'sitsformer pretrain' (or a "
                   "trained classifier); omit to train from scratch with the same recipe")
    add_run_arguments(p, "finetune.freeze_epochs=2 optim.layer_decay=0.75")
    p.set_defaults(func=run)
