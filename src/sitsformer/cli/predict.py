"""``sitsformer predict``: classify every pixel of a raster time series into a GeoTIFF map.

Writes the class map (``--output``), ``<map>_confidence.tif`` (highest class probability) and,
with ``--probabilities``, ``<map>_probabilities.tif``; all with the input's CRS and transform,
as Cloud-Optimized GeoTIFFs with overviews; the class map has a colour table, class names and
a QGIS style beside it (the checkpoint's legend, or ``--legend FILE``; ``--png`` adds a
quick-look PNG). Several ``--input`` tiles give one map per tile and a VRT mosaic.
Existing outputs are refused unless ``--overwrite``. The input is prepared with the
checkpoint's input spec and refused before any window runs when it does not fit (bands, time
axis, length). Windows run in this process, on a local Dask cluster (``--workers N``) or on
an existing scheduler (``--scheduler ADDRESS``); a killed run resumes where it stopped when
the same command is run again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sitsformer.cli._cluster import add_where_options
from sitsformer.cli._common import (
    UsageError,
    add_overwrite,
    add_quiet,
    add_reader_options,
    reader_options,
)
from sitsformer.data.legend import add_legend_options


def _open_runner(args: argparse.Namespace) -> Any:
    """Where blocks run: in-process, a local cluster (one worker per GPU with --device cuda
    on a multi-GPU machine) or an existing scheduler. Local workers get one dask thread each
    and cores // workers torch threads, so the cores are not oversubscribed."""
    import contextlib

    from sitsformer.parallel import dask_cluster, threads_per_worker

    workers = args.workers
    if not workers and not args.scheduler and (args.device or "").startswith("cuda"):
        import torch

        workers = torch.cuda.device_count() if torch.cuda.device_count() > 1 else 0
    if not workers and not args.scheduler:
        return contextlib.nullcontext(None), None
    threads = threads_per_worker(workers) if workers else None
    return dask_cluster(workers=workers or None, scheduler=args.scheduler, threads=1), threads


def _tile_outputs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(input, class map path) per tile; several inputs write tiles beside the VRT mosaic."""
    inputs = list(args.input)
    out = Path(args.output)
    if len(inputs) == 1:
        return [(inputs[0], out)]
    if out.suffix.lower() != ".vrt":
        raise UsageError(f"with {len(inputs)} --input tiles, --output is the mosaic to write "
                         f"and must end in .vrt, got {args.output!r}")
    stems = [Path(i).stem or Path(i).name for i in inputs]
    if len(set(stems)) != len(stems):
        raise UsageError(f"the --input tiles need distinct names (their maps are written as "
                         f"<name>.tif beside the mosaic), got {stems}")
    return [(i, out.parent / f"{stem}.tif") for i, stem in zip(inputs, stems)]


def run(args: argparse.Namespace) -> int:
    from sitsformer.data import InputSpec
    from sitsformer.data.errors import DataError
    from sitsformer.data.legend import png_path, resolve, write_quicklook
    from sitsformer.inference import build_vrt, companion_paths, open_raster_source, predict_raster
    from sitsformer.parallel.locks import OutputLockedError, output_lock
    from sitsformer.models import load_model

    try:
        options = reader_options(args.option)
        if args.input_scale is not None:
            options["scale"] = args.input_scale
        if args.cloud_folder:
            options["cloud_folder"] = args.cloud_folder
        tiles = _tile_outputs(args)
        if len(tiles) > 1 and args.png not in (None, True):
            raise UsageError(f"--png {args.png} names one PNG, but there are {len(tiles)} "
                             "--input tiles: pass --png alone (one quick-look per tile, "
                             "beside its map)")
        model, ckpt = load_model(args.checkpoint, map_location=args.device or "cpu")
        if "encoder" in ckpt["model_config"]:
            raise ValueError(f"{args.checkpoint} is a pre-training checkpoint (no classifier); "
                             "fine-tune it first with sitsformer finetune")
        spec = InputSpec.from_checkpoint(ckpt)
        legend = resolve(int(model.config.num_classes), legend_file=args.legend, spec=spec)
        # every tile is opened (and so checked against the checkpoint) before any block runs
        sources = [open_raster_source(i, **options) for i, _ in tiles]
        pngs_there = [str(q) for _, out in tiles if (q := png_path(args.png, out)) is not None
                      and q.exists()]
        if pngs_there and not args.overwrite:
            raise FileExistsError(f"output exists: {', '.join(pngs_there)} (pass --overwrite "
                                  "to replace it)")
        if len(tiles) > 1 and not args.overwrite and Path(args.output).exists():
            raise FileExistsError(f"output exists: {args.output} (pass --overwrite to replace it)")
        ctx, threads = _open_runner(args)
        results = []
        with output_lock(args.output, folder=False, what="map output"), ctx as runner:
            for (_, out), source in zip(tiles, sources):
                results.append(predict_raster(
                    model, source, out, window=args.window, overlap=args.overlap,
                    batch_size=args.batch_size, precision=args.precision,
                    probabilities=args.probabilities,
                    probabilities_dtype=args.probabilities_dtype, progress=not args.quiet,
                    spec=spec, edge_mode=args.edge_mode, overwrite=args.overwrite,
                    runner=runner, torch_threads=threads, cog=not args.no_cog,
                    device=args.device, legend=legend, force=args.force))
        if len(tiles) > 1:
            maps = [r.class_map for r in results]
            build_vrt(maps, args.output)
            conf_vrt, prob_vrt = companion_paths(Path(args.output))
            build_vrt([r.confidence for r in results], conf_vrt.with_suffix(".vrt"))
            if args.probabilities:
                build_vrt([r.probabilities for r in results], prob_vrt.with_suffix(".vrt"))
        pngs = []
        for res in results:
            png = png_path(args.png, res.class_map)
            if png is not None:
                pngs.append(write_quicklook(png, res.class_map, legend=legend,
                                            title=Path(res.class_map).name))
    except (FileNotFoundError, FileExistsError, ValueError, DataError, UsageError,
            OSError, OutputLockedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for res in results:
        resumed = (f", {res.pixels_computed:,} of them computed in this run"
                   if res.blocks_resumed else "")
        print(f"{res.height}x{res.width} pixels in {res.seconds:.1f} s{resumed} "
              f"({res.pixels_per_second:,.0f} px/s, {res.where}); {res.num_nodata} without a "
              "clear date (nodata)")
        print(f"blocks: {res.blocks_computed} computed, {res.blocks_resumed} resumed from an "
              f"earlier run, {res.blocks_total} in all")
        print(f"class map: {res.class_map}\nconfidence: {res.confidence}")
        if res.probabilities:
            print(f"probabilities: {res.probabilities}")
        print("pixels per class: " + json.dumps(res.class_counts))
    lost = sorted({w for res in results for w in res.lost_workers})
    if lost:
        print(f"warning: {len(lost)} Dask worker(s) died or left during the run "
              f"({', '.join(lost)}); their blocks were computed again on the other workers, "
              "so the map is complete", file=sys.stderr)
    if len(tiles) > 1:
        print(f"mosaic: {args.output}")
    for png in pngs:
        print(f"quick-look: {png}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict", help="map every pixel of a raster time series (GeoTIFF class map)",
        description="Classify every pixel of a raster time series (a folder of per-date "
        "GeoTIFFs or one stacked raster) with a checkpoint "
        "(sliding windows, batched, optional bf16) and write GeoTIFF maps.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file")
    p.add_argument("--input", required=True, action="append",
                   help="folder of per-date GeoTIFFs (a sen2r folder with a data and an SCL "
                   "sub-folder is read as data + cloud layer), or one raster holding every date "
                   "(dates and bands from its band descriptions, a <stem>_dates.txt beside it, "
                   "or -o dates=FILE -o n_bands=C -o layout=date_major|band_major; see "
                   "docs/data_preparation.md); repeat for several tiles")
    p.add_argument("--output", required=True,
                   help="class map GeoTIFF to write; with several --input tiles, the VRT "
                   "mosaic to write (each tile's maps go beside it as <tile>.tif)")
    add_reader_options(p)
    add_overwrite(p)
    p.add_argument("--cloud-folder", help="per-date cloud/SCL rasters (matched by date)")
    p.add_argument("--input-scale", type=float,
                   help="the reader's scale option: the factor the input values are stored "
                   "with (see sitsformer.data.GeoTiffTimeSeries); an input whose values imply "
                   "another scale than training is refused without it")
    p.add_argument("--force", action="store_true",
                   help="map an input whose value scale clearly differs from training "
                   "(a warning instead of the refusal)")
    p.add_argument("--window", type=int, default=256, help="window side in pixels (256)")
    p.add_argument("--overlap", type=int, help="halo around each window (default img_size//2)")
    p.add_argument("--batch-size", type=int, default=1024, help="pixels per forward pass")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--edge-mode", choices=["masked", "edge", "reflect"], default="masked",
                   help="neighbourhood beyond the raster edge (patch models)")
    p.add_argument("--probabilities", action="store_true",
                   help="also write per-class probabilities")
    p.add_argument("--probabilities-dtype", choices=["float32", "uint8"], default="float32",
                   help="uint8: compact probabilities round(254 p), nodata 255, the 1/254 "
                   "scale stored in the file")
    p.add_argument("--no-cog", action="store_true",
                   help="plain tiled GeoTIFFs instead of Cloud-Optimized ones with overviews")
    p.add_argument("--device", help="e.g. cpu, cuda (default cpu); with cuda on a machine "
                   "with several GPUs a local cluster of one worker per GPU is started")
    add_legend_options(p)
    add_where_options(p)
    add_quiet(p)
    p.set_defaults(func=run)
