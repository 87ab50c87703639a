"""``sitsformer smooth``: Bayesian spatial smoothing of a probability raster (as R ``sits``).

Writes the smoothed probabilities (``--output``) and the class map ``<stem>_class.tif``, both
Cloud-Optimized GeoTIFFs carrying the input's legend (or ``--legend FILE``'s): colour table,
class names, ``.aux.xml`` and QGIS ``.qml`` beside the class map; ``--png`` adds a quick-look.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sitsformer.cli._cluster import add_cluster_options, runner_from_args, say
from sitsformer.data.legend import add_legend_options


def run(args: argparse.Namespace) -> int:
    from sitsformer.data.errors import DataError
    from sitsformer.maps.smoothing import smooth_raster

    from sitsformer.data.legend import png_path
    from sitsformer.maps.smoothing import smoothed_paths

    smoothness = args.smoothness[0] if len(args.smoothness) == 1 else args.smoothness
    try:
        with runner_from_args(args) as runner:
            res = smooth_raster(args.input, args.output, window=args.window,
                                smoothness=smoothness, neigh_fraction=args.neigh_fraction,
                                block=args.block, runner=runner, progress=not args.quiet,
                                overwrite=args.overwrite, legend=args.legend,
                                png=png_path(args.png, smoothed_paths(args.output)[1]),
                                cog=not args.no_cog)
    except (FileNotFoundError, FileExistsError, ValueError, OSError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    say(args, f"{res.height}x{res.width} pixels, {res.num_classes} classes, "
              f"{res.num_nodata} nodata; {res.changed_pixels} pixels changed class "
              f"({res.seconds:.1f} s, {res.runner})")
    say(args, f"smoothed probabilities: {res.probabilities}\nclass map: {res.class_map}")
    say(args, "pixels per class: " + json.dumps(dict(zip(res.class_names,
                                                          res.class_counts))))
    if res.png:
        say(args, f"quick-look: {res.png}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "smooth", help="Bayesian spatial smoothing of class probabilities (as R sits)",
        description="Smooth a probability raster (sitsformer predict --probabilities) with "
        "the Bayesian neighbourhood smoother of the R sits package and write smoothed "
        "probabilities plus the class map <output stem>_class.tif.")
    p.add_argument("--input", required=True, help="probability GeoTIFF (one band per class)")
    p.add_argument("--output", required=True, help="smoothed probability GeoTIFF to write")
    p.add_argument("--window", type=int, default=9, help="neighbourhood side, odd (9)")
    p.add_argument("--smoothness", type=float, nargs="+", default=[20.0],
                   help="prior variance of the logits: one value or one per class (20); "
                   "larger = smoother")
    p.add_argument("--neigh-fraction", type=float, default=0.5,
                   help="share of the neighbours with the highest values used for the prior "
                   "(0.5)")
    p.add_argument("--no-cog", action="store_true",
                   help="plain tiled GeoTIFFs instead of Cloud-Optimized ones with overviews")
    add_legend_options(p, png_default="<output stem>_class.png")
    add_cluster_options(p)
    p.set_defaults(func=run)
