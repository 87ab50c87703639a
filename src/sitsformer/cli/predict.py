"""``sitsformer predict``: classify every pixel of a raster time series into a GeoTIFF map.

Writes the class map, ``<map>_confidence.tif`` (highest class probability) and, with
``--probabilities``, ``<map>_probabilities.tif``; all with the input's CRS and transform.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def run(args: argparse.Namespace) -> int:
    from sitsformer.data.errors import DataError
    from sitsformer.inference import open_raster_source, predict_raster
    from sitsformer.training.checkpoint import load_model

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        print(f"error: output exists: {out} (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    try:
        model, ckpt = load_model(args.checkpoint, map_location=args.device or "cpu")
        options: dict[str, Any] = {}
        if args.input_scale is not None:
            options["scale"] = args.input_scale
        if args.cloud_folder:
            options["cloud_folder"] = args.cloud_folder
        source = open_raster_source(args.input, **options)
        res = predict_raster(model, source, out, window=args.window, overlap=args.overlap,
                             batch_size=args.batch_size, precision=args.precision,
                             probabilities=args.probabilities, progress=not args.no_progress,
                             data_meta=dict(ckpt.get("data_meta") or {}),
                             edge_mode=args.edge_mode, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, DataError) as err:
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
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--cloud-folder", help="per-date cloud/SCL rasters (matched by date)")
    p.add_argument("--input-scale", type=float,
                   help="multiply the input values by this when reading (e.g. 1e-4)")
    p.add_argument("--window", type=int, default=256, help="window side in pixels (256)")
    p.add_argument("--overlap", type=int, help="halo around each window (default img_size//2)")
    p.add_argument("--batch-size", type=int, default=1024, help="pixels per forward pass")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--edge-mode", choices=["masked", "edge", "reflect"], default="masked",
                   help="neighbourhood beyond the raster edge (patch models)")
    p.add_argument("--probabilities", action="store_true",
                   help="also write per-class probabilities")
    p.add_argument("--device", help="e.g. cpu, cuda (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
