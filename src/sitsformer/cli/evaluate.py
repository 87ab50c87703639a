"""``sitsformer evaluate``: score a checkpoint on a labelled source and write the report.

By default the checkpoint's own test split is scored when ``--data`` is the training source
(the checkpoint records which samples were train/val/test; ``--split`` chooses another, and
scoring samples the model trained on warns). The model is rebuilt from the checkpoint alone; inputs are prepared with the checkpoint's
input spec (scale, normalisation) and checked against it (bands, time axis). The report
folder (``--output``, default ``evaluation/`` beside the checkpoint) is refused when it already
holds a report, unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sitsformer.cli._common import (
    UsageError,
    add_overwrite,
    add_quiet,
    add_reader_options,
    reader_options,
)

REPORT_FILES = ("metrics.json", "report.md")


def run(args: argparse.Namespace) -> int:
    from sitsformer.data.errors import DataError
    from sitsformer.evaluation.evaluate import evaluate_checkpoint

    out_dir = Path(args.output) if args.output else Path(args.checkpoint).with_name("evaluation")
    existing = [str(out_dir / f) for f in REPORT_FILES if (out_dir / f).exists()]
    if existing and not args.overwrite:
        print(f"error: output exists: {', '.join(existing)} (pass --overwrite to replace it)",
              file=sys.stderr)
        return 1
    try:
        res = evaluate_checkpoint(args.checkpoint, args.data, out_dir,
                                  batch_size=args.batch_size, precision=args.precision,
                                  device=args.device, progress=not args.quiet,
                                  data_options=reader_options(args.option) if args.option
                                  else None, split=args.split)
    except (FileNotFoundError, ValueError, DataError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    c = res["counts"]
    for note in res["warnings"]:
        print(f"warning: {note}", file=sys.stderr)
    print(f"split: {res['split']}")
    print(f"scored {c['scored']} of {c['samples']} samples "
          f"({c['excluded_no_valid_date']} without a valid date, {c['unlabelled']} unlabelled)")
    print(f"OA {res['oa']:.4f}  kappa {res['kappa']:.4f}  macro-F1 {res['macro_f1']:.4f}  "
          f"weighted-F1 {res['weighted_f1']:.4f}  mIoU {res['miou']:.4f}")
    for kind, path in res["files"].items():
        print(f"{kind}: {path}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a checkpoint on labelled data (JSON/Markdown report, plots)",
        description="Rebuild the model from a checkpoint, classify every sample of a labelled "
        "source and write metrics.json, report.md, confusion_matrix.png and per_class.png.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file (best.pt, last.pt)")
    p.add_argument("--data", required=True,
                   help="labelled source: CSV table, GeoTIFF folder, EOPatch, PASTIS, Zarr "
                   "store or .npz (anything sitsformer.data.open_source reads)")
    p.add_argument("--output", help="report folder (default: 'evaluation' beside the checkpoint)")
    add_reader_options(p)
    add_overwrite(p)
    p.add_argument("--split", choices=["all", "train", "val", "test"], default="default",
                   help="samples to score: the checkpoint's recorded train/val/test samples "
                   "(when --data is the training source) or all; default: test when --data is "
                   "the training source, else all. Scoring training samples warns")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--device", help="e.g. cpu, cuda (default cpu)")
    add_quiet(p)
    p.set_defaults(func=run)
