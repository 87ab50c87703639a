"""Peak memory of ``build_store_from_cube`` is set by the block size, not by the raster.

    PYTHONPATH=src python benchmarks/bench_cube_build.py [--side 256] [--block 64]

Builds the sample store of two GENERATED rasters (:func:`sitsformer.data.write_demo_raster`,
label polygons over the whole scene), the second with 4x the area, each in a fresh process, and
prints each build's peak RSS and their ratio (the goal: within 20 %), together with the peak
RSS of the in-memory reader (``read_geotiff_folder``, which reads the whole raster) for contrast.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, warnings
warnings.simplefilter("ignore")
from sitsformer.data import open_cube, build_store_from_cube, read_geotiff_folder
folder, labels, out, block, mode = sys.argv[1:6]
if mode == "cube":
    cube = open_cube(folder, chunks=int(block), scale=10000)
    n = len(build_store_from_cube(cube, labels, out, patch_size=5, block=int(block),
                                  progress=False))
else:
    n = len(read_geotiff_folder(folder, labels=labels, patch_size=5, scale=10000))
print(json.dumps({"samples": n, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(folder: Path, labels: Path, out: Path, block: int, mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(labels), str(out),
                           str(block), mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from sitsformer.data import S2_BANDS, write_demo_raster

    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--dates", type=int, default=12)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    results = {}
    for name, side in (("1x", args.side), ("4x", 2 * args.side)):
        r = write_demo_raster(tmp / name, height=side, width=side, num_dates=args.dates,
                              bands=S2_BANDS, block=32)
        cube = run(r["folder"], r["labels"], tmp / f"{name}.zarr", args.block, "cube")
        mem = run(r["folder"], r["labels"], tmp / "unused", args.block, "memory")
        results[name] = cube
        print(f"{name} area ({side}x{side}, T={args.dates}, 10 bands, 5x5 patches): "
              f"{cube['samples']:,} samples; cube build peak RSS {cube['peak_mb']:,.0f} MB "
              f"(block {args.block}); whole-raster reader {mem['peak_mb']:,.0f} MB")
    ratio = results["4x"]["peak_mb"] / results["1x"]["peak_mb"]
    print(f"peak RSS ratio 4x / 1x area: {ratio:.2f} (goal <= 1.20)")


if __name__ == "__main__":
    main()
