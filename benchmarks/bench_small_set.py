"""Training time and test OA of the shipped recipe on a set of the size issue 31 names (337
training / 144 test pixels), with its small-set settings (``train.small_set``, as shipped)
against without them (``train.small_set_max_samples=null``), in one run.

The set is cut from the real Victoria Sentinel-2 pixels in ``../shared/data``: 481 samples drawn
per class in proportion (seed 0), 70 / 30 per class into training and test, written with a
``split`` array that ``data.split=upstream`` reads. ``--every 2`` keeps every second date (37
of 73: the Amazon set of the issue has 36 dates x 11 bands). Each setting is a separate
``sitsformer train`` process (``train.threads`` torch threads), timed from start to exit (data
read, training, the test pass, the checkpoints); settings alternate over ``--repeats`` rounds.

Usage::

    python benchmarks/bench_small_set.py --every 2 --threads 2
    python benchmarks/bench_small_set.py --every 1 --threads 2 --repeats 2 --out /tmp/small
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

SHARED = Path(os.environ.get("SITSFORMER_SHARED_DATA",
                             Path(__file__).resolve().parents[1].parent / "shared" / "data"))
VICTORIA = SHARED / "s2_victoria_igarss2019" / "s2_victoria_igarss2019.npz"
SETTINGS = {"small-set (shipped)": [], "without": ["train.small_set_max_samples=null"]}


def make_subset(path: Path, every: int, n: int = 481, train_fraction: float = 0.7) -> Path:
    """The 481-sample cut described in the module doc, written to ``path``."""
    src = np.load(VICTORIA, allow_pickle=False)
    y = src["y"]
    rng = np.random.default_rng(0)
    take, split = [], []
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts / counts.sum() * n).astype(int)
    quota[: n - quota.sum()] += 1  # the remainder, one each to the first classes
    for c, q in zip(classes, quota):
        idx = rng.permutation(np.flatnonzero(y == c))[:q]
        k = int(round(q * train_fraction))
        take.extend(idx)
        split.extend(["train"] * k + ["test"] * (q - k))
    take = np.asarray(take)
    keep = {k: src[k] for k in src.files if k not in ("x", "y", "split", "group", "t_index")}
    np.savez(path, x=src["x"][take][:, ::every], y=y[take], split=np.asarray(split),
             group=src["group"][take], t_index=src["t_index"][::every], **keep)
    return path


def train_once(data: Path, out: Path, extra: list[str], threads: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "sitsformer", "train", "--config", "victoria_pixel",
           f"data.source={data}", "data.split=upstream", f"train.threads={threads}",
           "logging.plots=false", "logging.tensorboard=false", "--output", str(out), "--quiet",
           *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    test = json.loads((out / "test_metrics.json").read_text())
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    epochs = sum(1 for _ in (out / "metrics.jsonl").open())
    return {"seconds": seconds, "oa": test["test_oa"], "epochs": epochs,
            "width": cfg["model"]["embed_dim"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=2, help="keep every N-th date (default 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here")
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench_small_set_"))
    root.mkdir(parents=True, exist_ok=True)
    data = make_subset(root / "subset.npz", args.every)
    shape = np.load(data)["x"].shape
    print(f"subset: {shape[0]} samples x {shape[1]} dates x {shape[2]} bands (337 train / 144 "
          f"test), {args.threads} threads", flush=True)
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in SETTINGS}
    for r in range(args.repeats):
        order = list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]
        for name in order:
            res = train_once(data, root / f"{name.split()[0]}_{r}", SETTINGS[name],
                             args.threads)
            rows[name].append(res)
            print(f"round {r} {name:20s} width {res['width']:4d} epochs {res['epochs']:4d} "
                  f"{res['seconds']:7.1f} s  test OA {res['oa']:.4f}", flush=True)
    med = {k: float(np.median([x["seconds"] for x in v])) for k, v in rows.items()}
    a, b = list(SETTINGS)
    print(f"median seconds: {a} {med[a]:.1f}, {b} {med[b]:.1f}; ratio {med[a] / med[b]:.2f}")


if __name__ == "__main__":
    main()
