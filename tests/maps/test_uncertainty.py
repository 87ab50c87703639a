"""Uncertainty measures: exact values, rasters through the CLI, candidate points."""

from __future__ import annotations

import math

import numpy as np
import pytest
from maps_helpers import TRANSFORM, probabilities, read, regions, write_raster

from sitsformer.cli import main
from sitsformer.maps import read_points, uncertainty, uncertainty_raster


def test_measures_by_hand():
    p = np.array([[1.0, 1 / 3, 0.5, -1.0],
                  [0.0, 1 / 3, 0.3, -1.0],
                  [0.0, 1 / 3, 0.2, -1.0]])
    u = uncertainty(p)
    h = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)) / math.log(3)
    np.testing.assert_allclose(u["entropy"], [0, 1, h, -1], atol=1e-6)
    np.testing.assert_allclose(u["margin"], [0, 1, 0.8, -1], atol=1e-6)
    np.testing.assert_allclose(u["least_confidence"], [0, 2 / 3, 0.5, -1], atol=1e-6)


def test_cli_rasters_and_candidates(tmp_path, capsys):
    truth = regions()
    p = probabilities(truth, noise=0.2, seed=4, high=0.6)
    p[:, 0, 0] = -1.0
    path = write_raster(tmp_path / "p.tif", p, -1.0)
    out = tmp_path / "unc"
    rc = main(["uncertainty", "--input", str(path), "--output", str(out), "--points", "25",
               "--rank-by", "margin", "--block", "32"])
    assert rc == 0, capsys.readouterr().err
    assert "25 most uncertain pixels (margin)" in capsys.readouterr().out
    expected = uncertainty(p)
    for m in ("entropy", "margin", "least_confidence"):
        got = read(out / f"{m}.tif")[0]
        np.testing.assert_array_equal(got, expected[m])
    table, xy, crs = read_points(out / "candidates.gpkg")
    assert "32633" in crs and len(table) == 25
    # the 25 highest margins of the whole raster, best first, ties by position
    m = expected["margin"]
    r, c = np.nonzero(m >= 0)
    order = np.lexsort((c, r, -m[r, c]))[:25]
    assert table["row"].tolist() == r[order].tolist()
    assert table["col"].tolist() == c[order].tolist()
    assert table["rank"].tolist() == list(range(1, 26))
    np.testing.assert_allclose(table["margin"], m[r[order], c[order]], rtol=1e-6)
    assert table["predicted"].tolist() == p.argmax(0)[r[order], c[order]].tolist()
    assert table["label"].isna().all()
    # points are pixel centres
    xs = TRANSFORM.c + (table["col"] + 0.5) * TRANSFORM.a
    ys = TRANSFORM.f + (table["row"] + 0.5) * TRANSFORM.e
    np.testing.assert_allclose(xy, np.column_stack([xs, ys]))
    # a different block size gives the same files
    again = uncertainty_raster(path, tmp_path / "unc2", points=25, rank_by="margin", block=17,
                               progress=False)
    assert np.array_equal(read(again.rasters["margin"]), read(out / "margin.tif"))
    t2, _, _ = read_points(again.points)
    assert t2["row"].tolist() == table["row"].tolist()
    assert again.num_nodata == 1


def test_unknown_measure_is_refused(tmp_path):
    path = write_raster(tmp_path / "p.tif", probabilities(regions(10, 10)), -1.0)
    with pytest.raises(ValueError, match="unknown uncertainty measure"):
        uncertainty_raster(path, tmp_path / "u", measures=("variance",))
