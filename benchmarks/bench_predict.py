"""Map-inference throughput of the original SITS-Former configuration on CPU (fp32 and bf16).

Generates a raster time series of ``--size`` x ``--size`` pixels, 10 bands and ``--dates``
dates as per-date GeoTIFFs (int16 reflectance x 10000; 15 % of the pixel-dates are written as
nodata to stand for clouds) in a temporary folder, then maps a
``--crop`` x ``--crop`` region of it (the whole raster with ``--crop 0``) with
``sitsformer.inference.predict_raster`` and reports pixels per second and peak memory
(resident set size of the process during the run, from ``/proc/self/status`` VmHWM after a
reset). The model has random weights: speed does not depend on them.

    python benchmarks/bench_predict.py                 # 512 x 512 x 50 dates, 64 x 64 crop
    python benchmarks/bench_predict.py --crop 0        # the whole raster (slow on a CPU)
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin

from sitsformer.data import InputSpec
from sitsformer.inference import open_raster_source, predict_raster
from sitsformer.models import create_sits_former


def write_raster(folder: Path, size: int, dates: int, bands: int = 10, seed: int = 0) -> None:
    """Per-date GeoTIFFs ``S2A2A_<YYYYMMDD>_bench.tif``; ~15 % of pixel-dates are nodata."""
    rng = np.random.default_rng(seed)
    days = np.datetime64("2021-01-03") + np.sort(rng.choice(360, dates, replace=False))
    profile = {"driver": "GTiff", "height": size, "width": size, "count": bands,
               "dtype": "int16", "nodata": -32768, "crs": "EPSG:32632",
               "transform": from_origin(600000, 5000000, 10, 10), "tiled": True,
               "blockxsize": 256, "blockysize": 256}
    base = rng.integers(200, 4000, (bands, size, size), dtype=np.int16)
    for d in days:
        data = base + rng.integers(-150, 150, (bands, size, size), dtype=np.int16)
        data[:, rng.random((size, size)) < 0.15] = -32768
        name = f"S2A2A_{str(d).replace('-', '')}_bench.tif"
        with rasterio.open(folder / name, "w", **profile) as ds:
            ds.write(data)


class Crop:
    """The top-left ``h x w`` region of a raster source (same surface)."""

    def __init__(self, src, h: int, w: int) -> None:
        self.src, self.height, self.width = src, min(h, src.height), min(w, src.width)
        self.dates, self.crs, self.transform = src.dates, src.crs, src.transform
        self.bands, self.scale = src.bands, getattr(src, "scale", None)

    def read_window(self, row_off: int, col_off: int, h: int, w: int) -> dict:
        return self.src.read_window(row_off, col_off, h, w)


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--dates", type=int, default=50)
    ap.add_argument("--crop", type=int, default=64, help="map this square region (0 = all)")
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_sits_former("sitsformer_original", num_classes=10).eval()
    n_params = sum(p.numel() for p in model.parameters())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "raster"
        folder.mkdir()
        t0 = time.perf_counter()
        write_raster(folder, args.size, args.dates)
        print(f"generated {args.size}x{args.size} x {args.dates} dates x 10 bands in "
              f"{time.perf_counter() - t0:.1f} s")
        src = open_raster_source(folder)
        crop = args.crop or args.size
        region = Crop(src, crop, crop)
        spec = InputSpec(bands=list(src.bands), scale=10000.0)
        for precision in args.precisions.split(","):
            # warm-up on a tiny region (first-call allocations, oneDNN kernel selection)
            predict_raster(model, Crop(src, 8, 8), Path(tmp) / f"warm_{precision}.tif",
                           precision=precision, progress=False, spec=spec)
            _reset_peak()
            res = predict_raster(model, region, Path(tmp) / f"map_{precision}.tif",
                                 window=args.window, batch_size=args.batch_size,
                                 precision=precision, progress=True, spec=spec)
            row = {"precision": precision, "pixels": res.num_pixels,
                   "seconds": round(res.seconds, 2),
                   "pixels_per_s": round(res.pixels_per_second, 1),
                   "peak_rss_mib": round(_peak_mib(), 1)}
            results.append(row)
            print(json.dumps(row))
    info = {"model": "sitsformer_original", "params": n_params, "raster": [args.size, args.size],
            "dates": args.dates, "bands": 10, "mapped_region": [crop, crop],
            "window": args.window, "batch_size": args.batch_size,
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__, "results": results}
    print(json.dumps(info, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
