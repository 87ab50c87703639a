"""``sitsformer export``: write a checkpoint's model as an ONNX file or a ``torch.export`` program.

The exported model keeps the date mask as an input and takes any batch size and any number of
dates up to the model's ``max_seq_len``; see :mod:`sitsformer.models.export` for its inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sitsformer.cli._common import add_overwrite


def run(args: argparse.Namespace) -> int:
    import torch

    from sitsformer.models.export import EXPORT_FORMATS, export_input_names, export_model
    from sitsformer.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.checkpoint).is_file():
        print(f"error: checkpoint {args.checkpoint} not found", file=sys.stderr)
        return 1
    if Path(args.output).exists() and not args.overwrite:
        print(f"error: output exists: {args.output} (pass --overwrite to replace it)",
              file=sys.stderr)
        return 1
    if args.format not in EXPORT_FORMATS:  # argparse checks too; kept for direct calls
        print(f"error: --format must be one of {EXPORT_FORMATS}, got {args.format!r}",
              file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        model, _ = load_model(args.checkpoint)
        if not args.quiet:  # one opaque call that takes a minute on a small CPU: say so first
            print(f"exporting {args.checkpoint} ({model.config.arch}, "
                  f"{sum(p.numel() for p in model.parameters()):,} parameters) as "
                  f"{args.format}: tracing with torch.export"
                  + (", then converting to ONNX" if args.format == "onnx" else "")
                  + " (tens of seconds on a few CPU cores) ...", file=sys.stderr, flush=True)
        with _quiet_torch_export():
            path = export_model(model, args.output, args.format)
    except (ImportError, KeyError, ValueError) as err:
        print(f"error: exporting {args.checkpoint}: {err}", file=sys.stderr)
        return 1
    names = ", ".join(export_input_names(model))
    print(f"wrote {args.format} model to {path} in {time.perf_counter() - start:.1f} s "
          f"(inputs: {names}; output: logits (B, {model.config.num_classes}); up to "
          f"{model.config.max_seq_len} dates)")
    return 0


@contextlib.contextmanager
def _quiet_torch_export() -> Iterator[None]:
    """Hide two messages of torch's exporter that are about torch itself, not the model: one
    log line per torchvision operator it cannot register when torchvision is not installed
    (sitsformer does not use torchvision), and pytree's ``LeafSpec`` FutureWarning raised
    inside torch while it copies the program. Other warnings still show."""
    import logging
    import warnings

    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is "
                                    "deprecated", category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export", help="export a checkpoint's model to ONNX or a torch.export program",
        description="Rebuild the model from a checkpoint and write it as an ONNX file "
        "(--format onnx, needs the 'onnx' extra) or a torch.export program (--format "
        "exported-program, load with torch.export.load(FILE).module()). Inputs: sequences "
        "(B, T, C, H, W) float32, masks (B, T) bool (True = valid date), doy (B, T) int64 "
        "(dates, days since 1970-01-01, for date_encoding=days_since); batch and T are dynamic.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file (best.pt, last.pt)")
    p.add_argument("--format", required=True, choices=["onnx", "exported-program"])
    p.add_argument("--output", required=True, help="file to write (e.g. model.onnx, model.pt2)")
    add_overwrite(p)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true",
                   help="no line before the export starts (the result line is still printed)")
    p.set_defaults(func=run)
