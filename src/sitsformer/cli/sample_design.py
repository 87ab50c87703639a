"""``sitsformer sample-design``: a stratified random sampling design from a class map
(strata = classes; sample size for a target standard error of overall accuracy)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sitsformer.cli._cluster import add_cluster_options, runner_from_args, say
from sitsformer.data.legend import add_legend_options, png_path


def run(args: argparse.Namespace) -> int:
    from sitsformer.data.errors import DataError
    from sitsformer.maps.sampling import sample_design

    ua = args.user_accuracy[0] if len(args.user_accuracy) == 1 else args.user_accuracy
    try:
        with runner_from_args(args) as runner:
            d = sample_design(args.input, args.output, target_se=args.target_se,
                              user_accuracy=ua, min_per_class=args.min_per_class,
                              n_total=args.n, seed=args.seed, class_names=args.classes,
                              block=args.block, runner=runner, progress=not args.quiet,
                              overwrite=args.overwrite, legend=args.legend,
                              png=png_path(args.png, Path(args.output).with_name(
                                  f"{Path(args.output).stem}_points.tif")))
    except (FileNotFoundError, FileExistsError, ValueError, OSError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    say(args, f"{d.n_total} points (eq. 13 gives n = {d.n_formula:.1f}); expected SE of "
              f"overall accuracy {d.expected_se:.4f} (target {d.target_se})")
    say(args, "| class | pixels | weight | expected UA | points |\n|---|---|---|---|---|")
    for c, N, w, u, n in zip(d.classes, d.pixels, d.weights, d.user_accuracy, d.allocation):
        say(args, f"| {c} | {N} | {w:.4f} | {u:.2f} | {n} |")
    say(args, f"points: {d.points}\ndesign: {d.design}")
    if d.png:
        say(args, f"quick-look: {d.png}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sample-design", help="stratified random sample of a class map for accuracy assessment",
        description="Draw a stratified random sample (strata = map classes) sized for a "
        "target standard error of overall accuracy (Olofsson et al. 2014, eq. 13), with a "
        "minimum per class; writes the points (GeoPackage) and <stem>_design.json.")
    p.add_argument("--input", required=True, help="class map GeoTIFF (uint8, nodata 255)")
    p.add_argument("--output", required=True, help="GeoPackage of sample points to write")
    p.add_argument("--target-se", type=float, default=0.01,
                   help="target standard error of overall accuracy (0.01)")
    p.add_argument("--user-accuracy", type=float, nargs="+", default=[0.8],
                   help="expected user's accuracy: one value or one per class (0.8)")
    p.add_argument("--min-per-class", type=int, default=50,
                   help="smallest sample of any class (50)")
    p.add_argument("-n", type=int, help="fixed total sample size instead of --target-se")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--classes", nargs="+", metavar="NAME",
                   help="class names, in index order (default: the map's legend)")
    add_legend_options(p, png_default="<output stem>_points.png: the class map with the points")
    add_cluster_options(p)
    p.set_defaults(func=run)
