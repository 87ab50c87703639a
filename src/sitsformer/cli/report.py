"""``sitsformer report``: one self-contained HTML file of a study (map viewer, class areas,
accuracies, training curves, temporal patterns, provenance) that opens offline.

By default the outputs of the study commands are searched in ``--study`` (see
:mod:`sitsformer.report.inputs` for the names); each ``--map``, ``--smoothed``, ... given
replaces the search for that input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def run(args: argparse.Namespace) -> int:
    from sitsformer.report import build_report, find_inputs

    try:
        inputs = find_inputs(args.study, map=args.map, probabilities=args.probabilities,
                             confidence=args.confidence, uncertainty=args.uncertainty,
                             smoothed=args.smoothed, design=args.design,
                             assessment=args.assessment, run=args.run,
                             benchmark=args.benchmark, samples=args.samples)
        res = build_report(inputs, args.output, max_side=args.max_side, title=args.title,
                           overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for m in res["missing"]:
        print(f"note: {m['section']}: {m['why']}", file=sys.stderr)
    print(f"report: {res['output']} ({res['bytes'] / 1e6:.2f} MB; sections: "
          f"{', '.join(res['sections'])}; {res['points']} points)")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report", help="one offline HTML report of a study, with a map viewer",
        description="Write one self-contained HTML file (no network needed, opens from "
        "file://) with an interactive map of the class map (legend, smoothed, confidence and "
        "uncertainty layers, sample points coloured by agreement), the class areas, error "
        "matrix and accuracies with 95 % intervals, training curves, the benchmark, "
        "per-class temporal patterns and the provenance. Inputs are found in --study by the "
        "names the study commands write; any option below replaces the search for its input.")
    p.add_argument("--study", metavar="DIR", help="study folder to search for the outputs of "
                   "predict, smooth, uncertainty, sample-design, assess, train, benchmark")
    p.add_argument("--map", help="class map GeoTIFF (sitsformer predict --output)")
    p.add_argument("--probabilities", help="probability raster (predict --probabilities)")
    p.add_argument("--confidence", help="confidence raster (<map>_confidence.tif)")
    p.add_argument("--smoothed", help="smoothed class map (sitsformer smooth: <stem>_class.tif)")
    p.add_argument("--uncertainty", help="uncertainty folder (sitsformer uncertainty --output) "
                   "or one uncertainty raster")
    p.add_argument("--design", help="sample design JSON (sitsformer sample-design: "
                   "<stem>_design.json)")
    p.add_argument("--assessment", metavar="DIR", help="sitsformer assess --output folder")
    p.add_argument("--run", metavar="RUN_DIR", help="training run folder (config.yaml, "
                   "metrics.csv, best.pt)")
    p.add_argument("--benchmark", metavar="DIR", help="sitsformer benchmark --output folder")
    p.add_argument("--samples", metavar="SOURCE", help="labelled data source of the temporal "
                   "patterns (default: the run's data.source)")
    p.add_argument("--max-side", type=int, default=2048,
                   help="longest side of the map overviews in the page, pixels (2048)")
    p.add_argument("--title", help="page title")
    p.add_argument("--output", required=True, help="HTML file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(func=run)
