"""``sitsformer uncertainty``: entropy, margin and least-confidence rasters from class
probabilities, and optionally the most uncertain pixels as points to label."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sitsformer.cli._cluster import add_cluster_options, runner_from_args, say
from sitsformer.data.legend import add_legend_options


def run(args: argparse.Namespace) -> int:
    from sitsformer.data.errors import DataError
    from pathlib import Path

    from sitsformer.data.legend import png_path
    from sitsformer.maps.uncertainty import uncertainty_raster

    try:
        with runner_from_args(args) as runner:
            res = uncertainty_raster(args.input, args.output, measures=tuple(args.measures),
                                     points=args.points, rank_by=args.rank_by,
                                     block=args.block, runner=runner,
                                     progress=not args.quiet, overwrite=args.overwrite,
                                     legend=args.legend, cog=not args.no_cog,
                                     png=png_path(args.png, Path(args.output)
                                                  / f"{args.rank_by}.tif"))
    except (FileNotFoundError, FileExistsError, ValueError, OSError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    say(args, f"{res.height}x{res.width} pixels, {res.num_nodata} nodata ({res.seconds:.1f} s, "
              f"{res.runner}); mean over valid pixels: "
              + json.dumps({k: round(v, 4) for k, v in res.mean.items()}))
    for m, path in res.rasters.items():
        say(args, f"{m}: {path}")
    if res.points:
        say(args, f"{res.num_points} most uncertain pixels ({args.rank_by}): {res.points}")
    if res.png:
        say(args, f"quick-look: {res.png}")
    return 0


def register(subparsers: Any) -> None:
    from sitsformer.maps.uncertainty import MEASURES

    p = subparsers.add_parser(
        "uncertainty", help="entropy / margin / least-confidence maps, points to label",
        description="Write uncertainty rasters (0 = certain, 1 = most uncertain) from a "
        "probability raster into the folder --output and, with --points N, the N most "
        "uncertain pixels as candidates.gpkg.")
    p.add_argument("--input", required=True, help="probability GeoTIFF (one band per class)")
    p.add_argument("--output", required=True, help="folder for the rasters and points")
    p.add_argument("--measures", nargs="+", choices=MEASURES, default=list(MEASURES),
                   help="which rasters to write (all)")
    p.add_argument("--points", type=int, default=0, metavar="N",
                   help="also write the N most uncertain pixels as candidates.gpkg")
    p.add_argument("--rank-by", choices=MEASURES, default="entropy",
                   help="measure that ranks the candidate points (entropy)")
    p.add_argument("--no-cog", action="store_true",
                   help="plain tiled GeoTIFFs instead of Cloud-Optimized ones with overviews")
    add_legend_options(p, png_default="<output>/<rank-by measure>.png, the ranked measure "
                       "on a grey ramp")
    add_cluster_options(p)
    p.set_defaults(func=run)
