"""Stratified sample designs: Olofsson eq. 13, allocation, the drawn points."""

from __future__ import annotations

import json

import numpy as np
import pytest
from maps_helpers import regions, write_raster

from sitsformer.cli import main
from sitsformer.maps import (
    allocate,
    dask_cluster,
    expected_oa_se,
    read_points,
    sample_design,
    sample_size,
)
from sitsformer.maps.sampling import smallest_sample


def test_sample_size_by_hand():
    # strata shares of the Olofsson et al. (2014) example map, with expected user's
    # accuracies 0.70, 0.60, 0.90, 0.95 and a target SE of 0.01. By hand:
    # sum W_i S_i = 0.02*sqrt(.21) + 0.015*sqrt(.24) + 0.32*0.3 + 0.645*sqrt(.0475)
    #             = 0.0091652 + 0.0073485 + 0.096 + 0.1405745 = 0.2530882; n = 25.30882^2
    w = np.array([200_000, 150_000, 3_200_000, 6_450_000]) / 10_000_000
    n = sample_size(w, [0.7, 0.6, 0.9, 0.95], 0.01)
    assert n == pytest.approx(0.2530882 ** 2 / 0.01 ** 2, rel=1e-6)
    assert round(n) == 641
    # the finite-population term only makes it smaller
    assert sample_size(w, [0.7, 0.6, 0.9, 0.95], 0.01, 1000) < n


def test_allocation_minimum_and_target():
    pixels = np.array([200_000, 150_000, 3_200_000, 6_450_000])
    a = allocate(641, pixels, 75)
    assert a.sum() == 641 and (a >= 75).all()
    assert a[0] == a[1] == 75  # rare classes get the minimum, the rest by area
    assert abs(a[2] / a[3] - 3.2 / 6.45) < 0.01
    ua = [0.7, 0.6, 0.9, 0.95]
    w = pixels / pixels.sum()
    n = smallest_sample(641, pixels, ua, 0.01, 75)
    assert expected_oa_se(w, ua, allocate(n, pixels, 75)) <= 0.01
    assert expected_oa_se(w, ua, allocate(n - 1, pixels, 75)) > 0.01
    assert allocate(10, [3, 1000], 5).tolist() == [3, 7]  # never more than a stratum has


def test_design_points(tmp_path, capsys):
    cls = regions()
    cls[:2, :] = 255
    path = write_raster(tmp_path / "classes.tif", cls, 255, "uint8")
    out = tmp_path / "design.gpkg"
    rc = main(["sample-design", "--input", str(path), "--output", str(out), "--target-se",
               "0.02", "--user-accuracy", "0.8", "--min-per-class", "60", "--seed", "3",
               "--classes", "crop", "forest", "water", "--block", "32"])
    assert rc == 0, capsys.readouterr().err
    design = json.loads((tmp_path / "design_design.json").read_text())
    table, xy, crs = read_points(out)
    assert "32633" in crs
    counts = np.bincount(table["stratum"], minlength=3)
    assert counts.tolist() == design["allocation"] and min(counts) >= 60
    assert design["pixels"] == np.bincount(cls[cls != 255]).tolist()
    assert design["expected_se"] <= 0.02
    # every point lies on a pixel of its stratum, no pixel twice
    assert (cls[table["row"], table["col"]] == table["stratum"]).all()
    assert len(set(zip(table["row"], table["col"]))) == len(table)
    assert set(table["stratum_name"]) == {"crop", "forest", "water"}
    assert table["reference"].isna().all()
    # the same seed gives the same points whatever the blocks and the cluster
    with dask_cluster() as runner:
        again = sample_design(path, tmp_path / "again.gpkg", target_se=0.02, min_per_class=60,
                              seed=3, block=50, runner=runner, progress=False)
    t2, _, _ = read_points(again.points)
    assert t2[["row", "col", "stratum"]].equals(table[["row", "col", "stratum"]])
    other = sample_design(path, tmp_path / "other.gpkg", target_se=0.02, min_per_class=60,
                          seed=4, progress=False)
    t3, _, _ = read_points(other.points)
    assert not t3[["row", "col"]].equals(table[["row", "col"]])


def test_uniform_within_strata(tmp_path):
    """Over many draws, every pixel of a stratum is picked about equally often."""
    cls = np.zeros((12, 10), np.uint8)
    cls[:, 5:] = 1
    path = write_raster(tmp_path / "c.tif", cls, 255, "uint8")
    hits = np.zeros(cls.shape)
    for seed in range(60):
        d = sample_design(path, tmp_path / f"d{seed}.gpkg", n_total=20, min_per_class=10,
                          seed=seed, block=4, progress=False)
        t, _, _ = read_points(d.points)
        hits[t["row"], t["col"]] += 1
    # 10 of 60 pixels per stratum per draw: 10 hits expected per pixel
    assert hits.sum() == 1200 and abs(hits.mean() - 10) < 1e-9
    assert hits.min() >= 2 and hits.max() <= 20


def test_bad_parameters_are_named(tmp_path, capsys):
    path = write_raster(tmp_path / "c.tif", regions(), 255, "uint8")
    rc = main(["sample-design", "--input", str(path), "--output", str(tmp_path / "d.gpkg"),
               "--user-accuracy", "0.8", "0.9"])
    assert rc == 1 and "one per class (3 classes" in capsys.readouterr().err
    p = write_raster(tmp_path / "p.tif", np.ones((3, 5, 5), np.float32), -1.0)
    rc = main(["sample-design", "--input", str(p), "--output", str(tmp_path / "d.gpkg")])
    assert rc == 1 and "single-band integer class map" in capsys.readouterr().err
    assert not (tmp_path / "d.gpkg").exists()
