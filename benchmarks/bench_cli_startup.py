"""Start-up time of the ``sitsformer`` command line: wall time of whole processes.

Runs each command as ``python -m sitsformer ...`` in a fresh process, ``--warmup`` times
untimed (file cache) then ``--runs`` times, and prints mean +- standard deviation, min and max
of the wall time (as hyperfine does). The map commands run on small GENERATED rasters (written
to a temporary folder first): ``smooth`` and ``uncertainty`` on a 3-class 256 x 256 probability
raster, ``sample-design`` and ``assess`` on the 256 x 256 class map (``assess`` with the points
``sample-design`` drew, each labelled with its map class), so their time is almost all start-up.

``--importtime CASE`` also runs that case once under ``python -X importtime`` and lists the
imports with the largest cumulative time (the top-level packages a command loads).

    python benchmarks/bench_cli_startup.py                     # every case, 5 runs each
    python benchmarks/bench_cli_startup.py --cases version help --runs 10
    python benchmarks/bench_cli_startup.py --cases version --importtime version
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ["version", "help", "train-help", "smooth", "uncertainty", "sample-design", "assess"]


def make_inputs(folder: Path) -> dict[str, list[str]]:
    """Write the rasters and points; return ``{case: sitsformer arguments}``."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    from sitsformer.maps.points import read_points, write_points, xy_to_pixel

    rng = np.random.default_rng(0)
    h = w = 256
    truth = np.zeros((h, w), np.uint8)
    truth[:, 100:] = 1
    truth[150:, 180:] = 2
    prob = rng.uniform(0.0, 0.2, (3, h, w)).astype(np.float32)
    for c in range(3):
        prob[c][truth == c] += 0.8
    prob /= prob.sum(0)
    transform = from_origin(500000.0, 5100000.0, 10.0, 10.0)
    common = dict(driver="GTiff", height=h, width=w, crs="EPSG:32633", transform=transform)
    prob_path, map_path = folder / "prob.tif", folder / "map.tif"
    with rasterio.open(prob_path, "w", count=3, dtype="float32", nodata=-1.0, **common) as ds:
        ds.write(prob)
    with rasterio.open(map_path, "w", count=1, dtype="uint8", nodata=255, **common) as ds:
        ds.write(truth[None])
    design = folder / "design.gpkg"
    subprocess.run([sys.executable, "-m", "sitsformer", "sample-design", "--input",
                    str(map_path), "--output", str(design), "-n", "300", "--min-per-class",
                    "20", "--quiet"], check=True)
    table, xy, crs = read_points(design)
    rows, cols = xy_to_pixel(xy[:, 0], xy[:, 1], transform)
    table = table.assign(row=rows, col=cols, reference=truth[rows, cols].astype(np.int64))
    labelled = write_points(folder / "labelled.gpkg", table.drop(columns=["x", "y"]),
                            transform, crs)
    out = folder / "out"
    return {
        "smooth": ["smooth", "--input", str(prob_path), "--output", str(out / "smooth.tif"),
                   "--quiet", "--overwrite"],
        "uncertainty": ["uncertainty", "--input", str(prob_path), "--output",
                        str(out / "uncertainty"), "--quiet", "--overwrite"],
        "sample-design": ["sample-design", "--input", str(map_path), "--output",
                          str(out / "design.gpkg"), "-n", "300", "--min-per-class", "20",
                          "--quiet", "--overwrite"],
        "assess": ["assess", "--map", str(map_path), "--points", str(labelled), "--output",
                   str(out / "assess"), "--quiet", "--overwrite"],
    }


def time_case(argv: list[str], runs: int, warmup: int) -> list[float]:
    cmd = [sys.executable, "-m", "sitsformer", *argv]
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if done.returncode not in (0,):
            raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr[-2000:]}")
        if i >= warmup:
            times.append(dt)
    return times


def importtime(argv: list[str], top: int) -> list[tuple[float, str]]:
    """``(cumulative seconds, module)`` of the ``top`` slowest top-level imports."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "sitsformer", *argv],
                          capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cum, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2  # 0: imported by the script
        if depth <= 1:
            rows.append((int(cum) / 1e6, name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", choices=CASES, default=CASES)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--importtime", nargs="*", choices=CASES, default=[], metavar="CASE")
    ap.add_argument("--top", type=int, default=12, help="imports listed by --importtime (12)")
    ap.add_argument("--json", help="also write the timings here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        argvs = {"version": ["--version"], "help": ["--help"], "train-help": ["train", "--help"]}
        if set(args.cases + args.importtime) - set(argvs):
            argvs |= make_inputs(Path(tmp))
        results = {}
        print(f"{'command':<16} {'mean +- sd (s)':>16} {'min':>7} {'max':>7}  ({args.runs} runs, "
              f"{args.warmup} warm-up)")
        for case in args.cases:
            t = time_case(argvs[case], args.runs, args.warmup)
            sd = statistics.stdev(t) if len(t) > 1 else 0.0
            results[case] = {"mean": statistics.mean(t), "sd": sd, "min": min(t), "max": max(t)}
            print(f"{case:<16} {statistics.mean(t):>9.3f} +- {sd:.3f} {min(t):>7.3f} "
                  f"{max(t):>7.3f}", flush=True)
        for case in args.importtime:
            print(f"\npython -X importtime -m sitsformer {' '.join(argvs[case][:1])} ...: "
                  "slowest imports (cumulative s)")
            for sec, name in importtime(argvs[case], args.top):
                print(f"  {sec:7.3f}  {name}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
