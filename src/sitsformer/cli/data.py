"""``sitsformer data inspect|build|plot``: look at a data source, write a Zarr sample store,
draw its per-class temporal patterns.

``data build`` of a raster (a GeoTIFF folder, one stacked raster, a local STAC ``.json``) with
label polygons or points reads it as a lazy cube (:mod:`sitsformer.data.cube`) by default: only
the blocks holding labels are read (256 px unless ``--block``), in this process or on a Dask
cluster (``--workers``/``--scheduler``), and appended to the store block by block, so peak memory
is set by the block, not by the raster. ``--in-memory`` (or ``--stats-split`` other than ``all``)
reads the whole source first, as every other source kind is read.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

from sitsformer.cli._cluster import add_where_options
from sitsformer.cli._common import (
    UsageError,
    add_overwrite,
    add_quiet,
    add_reader_options,
    reader_options,
)


def summarize(dataset: Any, max_samples: int = 2000) -> dict[str, Any]:
    """Samples, T, C, H, W, classes with counts, date range, valid fraction, value range per band."""
    import numpy as np

    from sitsformer.data.dataset import exclusion_report

    n = len(dataset)
    step = max(1, n // max_samples)
    idx = range(0, n, step)
    ts, valid, total = [], 0, 0
    lo = hi = None
    shape = None
    for i in idx:
        s = dataset.raw_sample(i)
        x = np.asarray(s["sequence"], np.float32)
        if x.ndim == 2:
            x = x[:, :, None, None]
        shape = x.shape[1:]
        ts.append(x.shape[0])
        m = np.asarray(s["mask"], bool)[:, None, None]
        if s.get("pixel_mask") is not None:
            m = m & np.asarray(s["pixel_mask"], bool).reshape(x.shape[0], *x.shape[2:])
        m = np.broadcast_to(m, (x.shape[0], *x.shape[2:]))
        valid += int(m.sum())
        total += m.size
        sel = np.moveaxis(x, 1, -1)[m]
        if sel.size:
            lo = sel.min(0) if lo is None else np.minimum(lo, sel.min(0))
            hi = sel.max(0) if hi is None else np.maximum(hi, sel.max(0))
    c, h, w = shape if shape is not None else (len(dataset.bands), 0, 0)
    from sitsformer.data.errors import DataError
    from sitsformer.data.transforms import collect_values
    from sitsformer.data.values import guess_scale

    from sitsformer.data.module import count_out_of_range, sample_ids
    from sitsformer.data.values import valid_range

    ranges, scale = None, None
    try:
        values = collect_values(dataset, idx)
        value, kind, reason, ranges = guess_scale(values, list(dataset.bands),
                                                  str(dataset.meta.get("source")))
        scale = {"inferred": value, "reason": reason}
        # the rule training applies (data.scale: auto): observations outside the kind's
        # valid range after the scale are excluded; counted here the same way
        rng = valid_range(kind, values / value if value not in (None, 1.0) else values)
        count_out_of_range(dataset, idx, value, rng, sample_ids(dataset), dataset.meta,
                           "inspected samples")
    except DataError as err:
        scale = {"inferred": None, "reason": str(err)}
    given = dataset.meta.get("scale")
    if given is not None:
        scale["given"] = given
    return {
        "source": dataset.meta.get("source"), "format": dataset.meta.get("format"),
        "generated": bool(dataset.meta.get("generated", False)),
        "samples": n, "T": sorted(set(ts)) if len(set(ts)) > 1 else (ts[0] if ts else 0),
        "C": int(c), "H": int(h), "W": int(w), "bands": list(dataset.bands),
        "classes": dataset.class_counts(),
        "date_range": dataset.meta.get("date_range"),
        "time_axis": dataset.meta.get("time_axis"),
        "valid_fraction": round(valid / total, 4) if total else 0.0,
        "value_range": {b: [float(lo[k]), float(hi[k])] for k, b in enumerate(dataset.bands)}
        if lo is not None else None,
        "value_ranges": ranges, "scale": scale,
        "columns": dataset.meta.get("columns"),
        "sampled": len(ts) if step > 1 else None,
        "crs": dataset.meta.get("crs"), "transform": dataset.meta.get("transform"),
        "groups": None if dataset.groups is None else int(len(np.unique(dataset.groups))),
        "exclusions": dataset.meta.get("exclusions", {}),
        "exclusion_report": exclusion_report(dataset.meta),
    }


def _inspect(args: argparse.Namespace) -> int:
    from sitsformer.data import DataError, DataWarning, open_source

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        try:
            ds = open_source(args.source, kind=args.kind, **reader_options(args.option))
        except (DataError, UsageError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    info = summarize(ds)
    info["warnings"] = [str(w.message) for w in caught]
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    if info["generated"]:
        print("GENERATED demo data (synthetic)")
    print(f"source      {info['source']} ({info['format']})")
    print(f"samples     {info['samples']}   T {info['T']}   C {info['C']}   H {info['H']}   "
          f"W {info['W']}")
    print(f"bands       {', '.join(info['bands'])}")
    print(f"dates       {info['date_range'] or 'unknown (time-step positions)'}")
    print(f"valid obs.  {info['valid_fraction']:.1%}")
    if info["classes"]:
        print("classes     " + ", ".join(f"{k}: {v}" for k, v in info["classes"].items()))
    cols = info["columns"]
    if cols:
        used = ", ".join(f"{k} {v}" for k, v in cols.items() if v and k != "ignored")
        print(f"columns     {used}")
        print(f"ignored     {', '.join(cols['ignored']) if cols['ignored'] else 'none'}")
    if info["value_ranges"]:
        print("values      band     min .. max  (1st .. 99th percentile)  median  implies")
        for b, r in info["value_ranges"].items():
            print(f"  {b:<8} {r['min']:.4g} .. {r['max']:.4g}  ({r['q01']:.4g} .. "
                  f"{r['q99']:.4g})  {r['median']:.4g}  {r['implies']}")
    if info["scale"]:
        sc = info["scale"]
        given = f"; given: {sc['given']:g}" if sc.get("given") is not None else ""
        print(f"scale       {sc['inferred'] if sc['inferred'] is not None else '?'} "
              f"({sc['reason']}){given}")
    if info["crs"]:
        print(f"crs         {info['crs']}   transform {info['transform']}")
    print(f"excluded    {info['exclusion_report']}")
    for w in info["warnings"]:
        print(f"warning: {w}")
    return 0


def _build_from_cube(args: argparse.Namespace) -> int:
    """GeoTIFF folder / STAC JSON + label polygons or points -> store, block by block on Dask."""
    from pathlib import Path

    from sitsformer.data import DataError
    from sitsformer.data.cube import build_store_from_cube, open_cube
    from sitsformer.parallel import dask_cluster

    try:
        options = reader_options(args.option)
        labels = options.pop("labels", None)
        if labels is None:
            raise UsageError("building a store from a raster cube needs the label polygons or "
                             "points: -o labels=FILE (.gpkg, .shp, .geojson)")
        if args.stats_split != "all":
            raise UsageError("--stats-split applies to the in-memory build; the cube build "
                             "computes statistics on all samples")
        kw = {k: options.pop(k) for k in ("patch_size", "label_column") if k in options}
        block = args.block or 256
        cube = open_cube(Path(args.source), chunks=block, **options)
        with dask_cluster(workers=args.workers or None, scheduler=args.scheduler) as runner:
            store = build_store_from_cube(
                cube, labels, args.output, block=block, chunk_size=args.chunk_size,
                runner=runner if runner.client is not None else None,
                overwrite=args.overwrite, progress=not args.quiet, **kw)
    except (DataError, UsageError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {len(store)} samples to {args.output} (stats on {store.attrs['stats_on']}; "
          f"read block by block from the cube, {block} px blocks)")
    return 0


def _windowed(args: argparse.Namespace) -> bool:
    """Whether ``data build`` reads the source block by block (see the module doc)."""
    from sitsformer.data import DataError
    from sitsformer.data.sources import detect_source

    if str(args.source).endswith(".json"):
        return True  # a STAC collection is only read as a cube
    if args.in_memory:
        if args.workers or args.scheduler or args.block:
            raise UsageError("--in-memory reads the whole source in this process; it cannot be "
                             "combined with --workers, --scheduler or --block")
        return False
    if args.workers or args.scheduler or args.block:
        return True
    if args.stats_split != "all" or args.kind not in (None, "geotiff"):
        return False
    labelled = any(o.split("=", 1)[0].strip() == "labels" for o in args.option or [])
    try:
        return labelled and detect_source(args.source) == "geotiff"
    except DataError:
        return False  # open_source below names the problem


def _build(args: argparse.Namespace) -> int:
    from sitsformer.data import DataError, build_store, open_source, splits

    try:
        windowed = _windowed(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if windowed:
        return _build_from_cube(args)
    try:
        ds = open_source(args.source, kind=args.kind, **reader_options(args.option))
        train = None
        if args.stats_split != "all":
            if args.stats_split == "group" and ds.groups is not None:
                train = splits.group_split(ds, args.test_size, seed=args.seed)[0]
            elif ds.labels is not None:
                train = splits.stratified_split(ds.labels, args.test_size, seed=args.seed)[0]
            else:
                train = splits.random_split(len(ds), args.test_size, seed=args.seed)[0]
        store = build_store(ds, args.output, chunk_size=args.chunk_size, train_indices=train,
                            overwrite=args.overwrite, progress=not args.quiet)
    except (DataError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {len(store)} samples to {args.output} (stats on {store.attrs['stats_on']})")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from sitsformer.data import DataError, open_source
    from sitsformer.report.patterns import plot_patterns, temporal_patterns

    try:
        ds = open_source(args.source, kind=args.kind, **reader_options(args.option))
        patterns = temporal_patterns(ds, max_per_class=args.max_per_class, seed=args.seed)
        plot_patterns(patterns, args.output)
    except (DataError, UsageError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{k}: {v['n']}" for k, v in patterns["classes"].items())
    print(f"wrote {args.output}: {len(patterns['bands'])} panels "
          f"({', '.join(patterns['bands'])}) over {len(patterns['x'])} "
          f"{'time steps' if patterns['axis'] == 'time step' else 'days'} "
          f"({patterns['axis']}); samples "
          f"per class: {counts}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("data", help="inspect data sources, build sample stores")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("source", help="CSV table(s), GeoTIFF folder, EOPatch, PASTIS, .npz, "
                        "or a Zarr sample store")
    common.add_argument("--kind", choices=["csv", "geotiff", "eopatch", "pastis", "store", "npz"],
                        help="force the source kind instead of detecting it")
    add_reader_options(common)
    pi = sub.add_parser("inspect", parents=[common], help="summary of a source")
    pi.add_argument("--json", action="store_true", help="print JSON")
    pi.set_defaults(func=_inspect)
    pb = sub.add_parser("build", parents=[common], help="write a Zarr sample store")
    pb.add_argument("--output", required=True, help="store folder to write (e.g. data.zarr)")
    pb.add_argument("--chunk-size", type=int, default=64, help="samples per chunk")
    pb.add_argument("--stats-split", choices=["all", "group", "stratified"], default="all",
                    help="samples the normalisation statistics are computed on: all, or the "
                    "training part of a grouped/stratified split")
    pb.add_argument("--test-size", type=float, default=0.2)
    pb.add_argument("--seed", type=int, default=0)
    g = add_where_options(pb)
    g.add_argument("--block", type=int, metavar="PIXELS",
                   help="read the raster as a lazy cube in blocks of this side (default 256 "
                   "with --workers/--scheduler or a STAC .json source): only blocks holding "
                   "labels are read, memory is set by the block, not the raster")
    g.add_argument("--in-memory", action="store_true",
                   help="read the whole raster into memory before writing (the windowed build "
                   "is the default for a raster with -o labels=FILE)")
    add_overwrite(pb)
    add_quiet(pb)
    pb.set_defaults(func=_build)
    pp = sub.add_parser("plot", parents=[common], help="per-class temporal patterns (PNG)",
                        description="Median and inter-quartile range of every band (and NDVI "
                        "with a red and a near-infrared band) per class over the season, from "
                        "the clear observations of the labelled samples.")
    pp.add_argument("--output", required=True, help="PNG file to write")
    pp.add_argument("--max-per-class", type=int, default=500,
                    help="samples per class, a seeded random subset (500)")
    pp.add_argument("--seed", type=int, default=0)
    pp.set_defaults(func=_plot)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
