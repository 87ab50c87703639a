"""``sitsformer predict``: classify every pixel of a raster time series into a GeoTIFF map.

Writes the class map (``--output``), ``<map>_confidence.tif`` (highest class probability) and,
with ``--probabilities``, ``<map>_probabilities.tif``; all with the input's CRS and transform.
Existing outputs are refused unless ``--overwrite``. The input is prepared with the
checkpoint's input spec and refused before any window runs when it does not fit (bands, time
axis, length).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sitsformer.cli._common import (
    UsageError,
    add_overwrite,
    add_quiet,
    add_reader_options,
    reader_options,
)


def run(args: argparse.Namespace) -> int:
    from sitsformer.data import InputSpec
    from sitsformer.data.errors import DataError
    from sitsformer.inference import open_raster_source, predict_raster
    from sitsformer.models import load_model

    try:
        options = reader_options(args.option)
        if args.input_scale is not None:
            options["scale"] = args.input_scale
        if args.cloud_folder:
            options["cloud_folder"] = args.cloud_folder
        model, ckpt = load_model(args.checkpoint, map_location=args.device or "cpu")
        if "encoder" in ckpt["model_config"]:
            raise ValueError(f"{args.checkpoint} is a pre-training checkpoint (no classifier); "
                             "fine-tune it first with sitsformer finetune")
        source = open_raster_source(args.input, **options)
        res = predict_raster(model, source, args.output, window=args.window,
                             overlap=args.overlap, batch_size=args.batch_size,
                             precision=args.precision, probabilities=args.probabilities,
                             progress=not args.quiet, spec=InputSpec.from_checkpoint(ckpt),
                             edge_mode=args.edge_mode, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, DataError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{res.height}x{res.width} pixels in {res.seconds:.1f} s "
          f"({res.pixels_per_second:,.0f} px/s); {res.num_nodata} without a clear date (nodata)")
    print(f"class map: {res.class_map}\nconfidence: {res.confidence}")
    if res.probabilities:
        print(f"probabilities: {res.probabilities}")
    print("pixels per class: " + json.dumps(res.class_counts))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict", help="map every pixel of a raster time series (GeoTIFF class map)",
        description="Classify every pixel of a folder of per-date GeoTIFFs with a checkpoint "
        "(sliding windows, batched, optional bf16) and write GeoTIFF maps.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file")
    p.add_argument("--input", required=True,
                   help="folder of per-date GeoTIFFs (a sen2r folder with a data and an SCL "
                   "sub-folder is read as data + cloud layer)")
    p.add_argument("--output", required=True, help="class map GeoTIFF to write")
    add_reader_options(p)
    add_overwrite(p)
    p.add_argument("--cloud-folder", help="per-date cloud/SCL rasters (matched by date)")
    p.add_argument("--input-scale", type=float,
                   help="the reader's scale option: the factor the input values are stored "
                   "with (see sitsformer.data.GeoTiffTimeSeries)")
    p.add_argument("--window", type=int, default=256, help="window side in pixels (256)")
    p.add_argument("--overlap", type=int, help="halo around each window (default img_size//2)")
    p.add_argument("--batch-size", type=int, default=1024, help="pixels per forward pass")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--edge-mode", choices=["masked", "edge", "reflect"], default="masked",
                   help="neighbourhood beyond the raster edge (patch models)")
    p.add_argument("--probabilities", action="store_true",
                   help="also write per-class probabilities")
    p.add_argument("--device", help="e.g. cpu, cuda (default cpu)")
    add_quiet(p)
    p.set_defaults(func=run)
