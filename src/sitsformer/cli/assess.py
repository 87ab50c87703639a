"""``sitsformer assess``: accuracy and area estimates with confidence intervals from a map and
labelled points of a stratified sample (Olofsson et al. 2014)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sitsformer.cli._cluster import add_cluster_options, runner_from_args, say
from sitsformer.data.legend import add_legend_options


def run(args: argparse.Namespace) -> int:
    from sitsformer.data.errors import DataError
    from sitsformer.maps.assessment import assess_map

    try:
        with runner_from_args(args) as runner:
            res = assess_map(args.map, args.points, args.output, reference=args.reference,
                             class_names=args.classes, block=args.block, runner=runner,
                             overwrite=args.overwrite, progress=not args.quiet,
                             legend=args.legend)
    except (FileNotFoundError, FileExistsError, ValueError, OSError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    oa = res["overall_accuracy"]
    pt = res["points"]
    say(args, f"{pt['used']} of {pt['total']} points used; overall accuracy "
              f"{oa['estimate']:.4f} +- {oa['ci']:.4f}")
    unit = res["area_unit"]
    for u, p, a in zip(res["users_accuracy"], res["producers_accuracy"], res["area"]):
        say(args, f"{u['class']}: UA {u['estimate']:.3f} +- {u['ci']:.3f}, PA "
                  f"{p['estimate']:.3f} +- {p['ci']:.3f}, area {a.get('area', a['pixels']):,.1f}"
                  f" +- {a.get('area_ci', a['pixels_ci']):,.1f} {unit}")
    for kind, path in res["files"].items():
        say(args, f"{kind}: {path}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "assess", help="error matrix, accuracies and class areas with 95 %% CIs",
        description="From a class map and labelled points of a stratified sample drawn on it "
        "(sitsformer sample-design), estimate the error matrix in area proportions, overall, "
        "user's and producer's accuracy and the area of each class with 95 %% confidence "
        "intervals (Olofsson et al. 2014); writes assessment.json, assessment.md and "
        "assessment.png into --output.")
    p.add_argument("--map", required=True, help="class map GeoTIFF the sample was drawn on")
    p.add_argument("--points", required=True, help="labelled points (GeoPackage, ...)")
    p.add_argument("--output", required=True, help="report folder")
    p.add_argument("--reference", default="reference",
                   help="column with the reference label (class index or name; 'reference')")
    p.add_argument("--classes", nargs="+", metavar="NAME",
                   help="class names, in index order (default: the map's legend, else the "
                   "points' stratum_name column)")
    add_legend_options(p, png=False)
    add_cluster_options(p)
    p.set_defaults(func=run)
