"""``sitsformer report`` on a Sentinel-2 tile sized class map: the report's size and the time a
headless Chromium takes to open it.

    PYTHONPATH=src python benchmarks/bench_report.py [--side 10980] [--keep DIR]

A GENERATED 10980 x 10980 uint8 class map (one Sentinel-2 tile at 10 m; 10 classes in 60-pixel
fields with 5 % of the pixels flipped at random, so the PNGs do not compress to nothing) is
written once as a Cloud-Optimized GeoTIFF (tiled 512, deflate, nearest overviews) with a colour
table and predict's class names, then reported with ``sitsformer report --map``. Measured:
the report's build time and size (target < 50 MB), the page's own load time
(``performance.now()`` at the load event: the page parsed and every overview decoded and
shown; and when the class-under-the-cursor indices are decoded) and the wall time of
``chromium --headless --dump-dom`` from start to exit (browser start-up included; target < 5 s).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from html import unescape
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.transform import from_origin
from rasterio.windows import Window

K = 10


def write_class_map(path: Path, side: int, field: int = 60, noise: float = 0.05,
                    seed: int = 0) -> Path:
    """The GENERATED class map (module doc), written block row by block row, then a COG."""
    rng = np.random.default_rng(seed)
    cells = -(-side // field)
    grid = rng.integers(0, K, (cells, cells), dtype=np.uint8)
    tmp = path.with_name("plain.tif")
    prof = dict(driver="GTiff", height=side, width=side, count=1, dtype="uint8", nodata=255,
                crs="EPSG:32633", transform=from_origin(600000.0, 5300040.0, 10.0, 10.0),
                tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    from sitsformer.inference.outputs import class_colors

    colors = class_colors(K)
    with rasterio.open(tmp, "w", **prof) as ds:
        step = 1024
        for r0 in range(0, side, step):
            h = min(step, side - r0)
            rows = np.arange(r0, r0 + h) // field
            block = grid[rows][:, np.arange(side) // field]
            flip = rng.random(block.shape) < noise
            block[flip] = rng.integers(0, K, int(flip.sum()), dtype=np.uint8)
            ds.write(block[None], window=Window(0, r0, side, h))
        ds.write_colormap(1, {i: (*c, 255) for i, c in enumerate(colors)})
        ds.update_tags(class_names=json.dumps([f"class {i}" for i in range(K)]))
    rasterio.shutil.copy(tmp, path, driver="COG", compress="DEFLATE", blocksize=512,
                         overview_resampling="NEAREST", overviews="AUTO")
    tmp.unlink()
    return path


def open_in_chromium(page: Path, profile: Path, *extra: str) -> tuple[float, dict]:
    exe = next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                        "google-chrome"))), None)
    if exe is None:
        sys.exit("no chromium on PATH (apt-get install chromium)")
    start = time.perf_counter()
    done = subprocess.run([exe, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                           f"--user-data-dir={profile}", "--window-size=1300,900",
                           *extra, "--dump-dom", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    m = re.search(r'<pre id="report-state">(.*?)</pre>', done.stdout, re.S)
    state = json.loads(unescape(m.group(1))) if m and m.group(1) else {"error": done.stderr[-500:]}
    return wall, state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=10980)
    ap.add_argument("--keep", help="folder for the map and the report (default: a temp dir)")
    ap.add_argument("--repeats", type=int, default=3, help="browser openings (median)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_report_"))
    work.mkdir(parents=True, exist_ok=True)
    cmap = work / "map.tif"
    if not cmap.exists():
        t0 = time.perf_counter()
        write_class_map(cmap, args.side)
        print(f"class map {args.side} x {args.side}: {cmap.stat().st_size / 1e6:.1f} MB COG, "
              f"written in {time.perf_counter() - t0:.1f} s")
    from sitsformer.cli import main as cli

    page = work / "report.html"
    t0 = time.perf_counter()
    assert cli(["report", "--map", str(cmap), "--output", str(page), "--overwrite"]) == 0
    build = time.perf_counter() - t0
    size = page.stat().st_size / 1e6
    # the DOM is dumped at the load event: chromium's wall time is start-up + opening
    runs = [open_in_chromium(page, work / f"profile{i}") for i in range(args.repeats)]
    for _, state in runs:
        assert not state.get("errors") and not state.get("external"), state
    walls = sorted(w for w, _ in runs)
    loads = sorted(s["load_ms"] for _, s in runs)
    # given 5 s of (virtual) time after the load, the class indices behind the cursor readout
    # are decoded too: when that finished, in the page's clock
    _, after = open_in_chromium(page, work / "profile_idle", "--virtual-time-budget=5000")
    assert after.get("ready") and not after.get("errors"), after
    med = args.repeats // 2
    print(f"report: {size:.1f} MB (target < 50), built in {build:.1f} s")
    print(f"open in headless Chromium: page loaded (every overview decoded) at "
          f"{loads[med] / 1000:.2f} s, chromium start to exit {walls[med]:.2f} s (median of "
          f"{args.repeats}; target < 5 s); class-under-cursor indices decoded at "
          f"{after['index_ms'] / 1000:.2f} s")
    print(json.dumps({"side": args.side, "report_mb": round(size, 2), "build_s": round(build, 2),
                      "load_s": loads[med] / 1000, "chromium_wall_s": round(walls[med], 2),
                      "index_s": after["index_ms"] / 1000}))


if __name__ == "__main__":
    main()
