"""Bayesian smoothing: the sits method, against truth, block and cluster independence."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import dask.array as da
import numpy as np
import pytest
from maps_helpers import TRANSFORM, probabilities, read, regions, write_raster

from sitsformer.cli import main
from sitsformer.maps import bayes_smooth, smooth_raster
from sitsformer.maps.smoothing import bayes_smooth_block


def reference_smooth(p, window, sigma2, fraction):
    """The sits algorithm written out pixel by pixel (mirror edges, top-fraction prior)."""
    k, h, w = p.shape
    leg = window // 2
    q = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    lg = np.log(q / (q.sum(0) - q))
    mirror_r = [leg - i - 1 if i < leg else (i - leg if i < h + leg else 2 * h + leg - i - 1)
                for i in range(h + 2 * leg)]
    mirror_c = [leg - i - 1 if i < leg else (i - leg if i < w + leg else 2 * w + leg - i - 1)
                for i in range(w + 2 * leg)]
    out = np.empty_like(lg)
    for b in range(k):
        for i in range(h):
            for j in range(w):
                neigh = sorted((lg[b, mirror_r[i + a], mirror_c[j + c]]
                                for a in range(window) for c in range(window)), reverse=True)
                top = neigh[:math.ceil(fraction * len(neigh))]
                m = sum(top) / len(top)
                s2 = sum((v - m) ** 2 for v in top) / (len(top) - 1)
                wt = s2 / (s2 + sigma2)
                out[b, i, j] = wt * lg[b, i, j] + (1 - wt) * m
    prob = 1 / (1 + np.exp(-out))
    return prob / prob.sum(0)


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_matches_the_sits_algorithm_pixel_by_pixel(fraction):
    p = probabilities(regions(9, 11), noise=0.3, seed=3)
    got = bayes_smooth(da.from_array(p, chunks=(3, 4, 5)), window=5, smoothness=10,
                       neigh_fraction=fraction).compute()
    np.testing.assert_allclose(got, reference_smooth(p, 5, 10.0, fraction), rtol=0, atol=2e-7)


def test_salt_and_pepper_errors_are_removed(noisy, tmp_path):
    path, truth, p = noisy
    res = smooth_raster(path, tmp_path / "smooth.tif", window=7, smoothness=20, block=32,
                        progress=False)
    cls = read(res.class_map)[0]
    valid = cls != 255
    before = (p.argmax(0) == truth)[valid].mean()
    after = (cls == truth)[valid].mean()
    print(f"agreement with the truth: before {before:.4f}, after {after:.4f}")
    assert before < 0.87 and after > 0.99
    assert res.changed_pixels == int(((p.argmax(0) != cls) & valid).sum())
    assert res.class_counts == np.bincount(cls[valid], minlength=3).tolist()
    smoothed = read(res.probabilities)
    assert np.allclose(smoothed[:, valid].sum(0), 1, atol=1e-5)
    # nodata stays nodata, in both outputs
    assert (cls[:3, :3] == 255).all() and (smoothed[:, :3, :3] == -1).all()
    assert res.num_nodata == 9


def test_noise_free_map_is_unchanged_in_confident_interiors(tmp_path):
    truth = regions()
    p = probabilities(truth, noise=0.0, seed=2)
    smoothed = bayes_smooth(p, window=7, smoothness=20).compute()
    # interior: the whole 7x7 neighbourhood has the pixel's class
    pad = np.pad(truth, 3, mode="symmetric")
    from numpy.lib.stride_tricks import sliding_window_view
    win = sliding_window_view(pad, (7, 7))
    interior = (win == truth[:, :, None, None]).all((-1, -2))
    assert interior.mean() > 0.8
    assert np.array_equal(smoothed.argmax(0)[interior], truth[interior])
    np.testing.assert_allclose(smoothed[:, interior].max(0), p[:, interior].max(0), atol=0.05)
    # whatever changes lies within a window of a region boundary
    assert (smoothed.argmax(0) != truth).sum() < (~interior).sum()


def test_result_does_not_depend_on_blocks(noisy):
    _, _, p = noisy
    whole = bayes_smooth_block(np.pad(p, ((0, 0), (4, 4), (4, 4)), mode="symmetric"), 9,
                               [20.0] * 3, 0.5, -1.0)
    for chunks in [(3, 16, 16), (3, 33, 50), (3, 90, 110)]:
        got = bayes_smooth(da.from_array(p, chunks=chunks), window=9).compute()
        assert np.array_equal(got, whole)


def test_smoothness_orders_the_strength(noisy):
    _, truth, p = noisy
    valid = p[0] >= 0
    agree = [(bayes_smooth(p, window=5, smoothness=s).compute().argmax(0) == truth)[valid].mean()
             for s in (0.01, 1.0, 20.0)]
    assert agree[0] < agree[1] < agree[2]


def test_distributed_scheduler_equals_in_process(noisy, tmp_path, scheduler, capsys):
    path, _, _ = noisy
    local = smooth_raster(path, tmp_path / "local.tif", window=5, block=32, progress=False)
    rc = main(["smooth", "--input", str(path), "--output", str(tmp_path / "dist.tif"),
               "--window", "5", "--block", "32", "--scheduler", scheduler, "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert capsys.readouterr().out == ""  # --quiet
    assert np.array_equal(read(tmp_path / "dist.tif"), read(local.probabilities))
    assert np.array_equal(read(tmp_path / "dist_class.tif"), read(local.class_map))


@pytest.mark.slow
def test_cli_local_cluster_subprocess(noisy, tmp_path):
    path, _, _ = noisy
    ref = smooth_raster(path, tmp_path / "ref.tif", block=40, progress=False)
    out = tmp_path / "cli.tif"
    cmd = [sys.executable, "-m", "sitsformer.cli", "smooth", "--input", str(path), "--output",
           str(out), "--workers", "2", "--block", "40"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SITSFORMER_PROGRESS": "1"})  # bars as on a tty
    assert done.returncode == 0, done.stderr
    assert "local cluster (2 workers x" in done.stdout and "smooth" in done.stderr  # tqdm bar
    assert np.array_equal(read(out), read(ref.probabilities))
    import rasterio
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32633 and ds.transform == TRANSFORM
    assert main(cmd[3:cmd.index("--workers")] + ["--quiet"]) == 1  # exists: refused
    assert not list(tmp_path.glob(".*partial"))


def test_bad_input_is_refused(tmp_path, capsys):
    cls = write_raster(tmp_path / "classes.tif", regions(), 255, "uint8")
    rc = main(["smooth", "--input", str(cls), "--output", str(tmp_path / "s.tif"), "--quiet"])
    assert rc == 1 and "expected a probability raster" in capsys.readouterr().err
    p = write_raster(tmp_path / "p.tif", probabilities(regions(20, 20)), -1.0)
    rc = main(["smooth", "--input", str(p), "--output", str(tmp_path / "s.tif"),
               "--window", "4"])
    assert rc == 1 and "odd number" in capsys.readouterr().err
    rc = main(["smooth", "--input", str(p), "--output", str(tmp_path / "s.tif"),
               "--smoothness", "1", "2"])
    assert rc == 1 and "one per class (3)" in capsys.readouterr().err
    assert not (tmp_path / "s.tif").exists()
