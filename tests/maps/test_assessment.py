"""Accuracy and area estimates: the Olofsson et al. (2014) example, and the CLI end to end.

The example (section 5, tables 8 and 9 of Olofsson et al. 2014, Remote Sensing of
Environment 148, 42-57): a change map of 10,000,000 Landsat pixels (30 m) with the strata
deforestation 200,000 px, forest gain 150,000, stable forest 3,200,000, stable non-forest
6,450,000, and the sample error matrix below (rows: map, columns: reference). The published
values are checked at the precision they are printed with.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin

from sitsformer.cli import main
from sitsformer.maps import stratified_estimates, write_points

CLASSES = ["Deforestation", "Forest gain", "Stable forest", "Stable non-forest"]
COUNTS = np.array([[66, 0, 5, 4],
                   [0, 55, 8, 12],
                   [1, 0, 153, 11],
                   [2, 1, 9, 313]])
PIXELS = np.array([200_000, 150_000, 3_200_000, 6_450_000])
TABLE9 = [[0.0176, 0.0000, 0.0013, 0.0011],  # error matrix in area proportions
          [0.0000, 0.0110, 0.0016, 0.0024],
          [0.0019, 0.0000, 0.2967, 0.0213],
          [0.0040, 0.0020, 0.0179, 0.6212]]
USERS = [(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)]  # estimate, 95 % CI
PRODUCERS = [(0.75, 0.21), (0.85, None), (0.93, 0.03), (0.96, None)]
AREA_HA = [(21_158, 6_158), (11_686, 3_756), (285_770, 15_510), (581_386, 16_282)]


def check_olofsson(res):
    assert np.round(res["error_matrix_proportions"], 4).tolist() == TABLE9
    oa = res["overall_accuracy"]
    assert (round(oa["estimate"], 2), round(oa["ci"], 2)) == (0.95, 0.02)
    for got, (est, ci) in zip(res["users_accuracy"], USERS):
        assert (round(got["estimate"], 2), round(got["ci"], 2)) == (est, ci)
    for got, (est, ci) in zip(res["producers_accuracy"], PRODUCERS):
        assert round(got["estimate"], 2) == est
        if ci is not None:
            assert round(got["ci"], 2) == ci
    for got, (area, ci) in zip(res["area"], AREA_HA):
        assert (round(got["area"]), round(got["area_ci"])) == (area, ci)


def test_olofsson_2014_example():
    res = stratified_estimates(COUNTS, PIXELS, classes=CLASSES, pixel_area=0.09,
                               area_unit="ha")
    check_olofsson(res)
    assert round(res["area"][0]["pixels"]) == 235_086  # deforestation, in pixels
    # the two producer's-accuracy intervals printed as 0.23 and 0.01 in the paper do not
    # follow from its eq. 7 (other implementations find the same); these are eq. 7's values:
    assert round(res["producers_accuracy"][1]["ci"], 3) == 0.254
    assert round(res["producers_accuracy"][3]["ci"], 3) == 0.018


def test_estimates_are_consistent():
    res = stratified_estimates(COUNTS, PIXELS)
    p = np.asarray(res["error_matrix_proportions"])
    assert p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(p.sum(1), PIXELS / PIXELS.sum())  # rows keep the map shares
    assert sum(a["pixels"] for a in res["area"]) == pytest.approx(PIXELS.sum())
    # a perfect sample gives the map's own areas with zero uncertainty
    perfect = stratified_estimates(np.diag([10, 20, 30, 40]), PIXELS)
    assert perfect["overall_accuracy"]["estimate"] == 1 and perfect["overall_accuracy"]["se"] == 0
    assert [a["pixels"] for a in perfect["area"]] == PIXELS.tolist()
    with pytest.raises(ValueError, match="no sample point"):
        stratified_estimates(np.diag([10, 0, 30, 40]), PIXELS)


def olofsson_on_disk(tmp_path):
    """The example as files: a class map with the strata at 1/100 of the pixels on a 300 m
    grid (so areas in ha are the paper's) and the 640 labelled sample points."""
    h, w = 250, 400
    cls = np.repeat(np.arange(4, dtype=np.uint8), PIXELS // 100).reshape(h, w)
    transform = from_origin(300000.0, 5000000.0, 300.0, 300.0)
    prof = dict(driver="GTiff", height=h, width=w, count=1, dtype="uint8", nodata=255,
                crs="EPSG:32633", transform=transform)
    map_path = tmp_path / "map.tif"
    with rasterio.open(map_path, "w", **prof) as ds:
        ds.write(cls[None])
    rows, cols, strata, refs = [], [], [], []
    for i in range(4):
        r, c = np.nonzero(cls == i)
        take = np.linspace(0, len(r) - 1, COUNTS[i].sum()).astype(int)
        rows += r[take].tolist()
        cols += c[take].tolist()
        strata += [i] * len(take)
        refs += [CLASSES[j] for j in range(4) for _ in range(COUNTS[i, j])]
    table = pd.DataFrame({"point_id": np.arange(1, len(rows) + 1), "stratum": strata,
                          "row": rows, "col": cols, "reference": refs})
    return map_path, table, transform


def test_cli_reproduces_the_example_from_files(tmp_path, capsys):
    map_path, table, transform = olofsson_on_disk(tmp_path)
    extra = pd.DataFrame({"point_id": [9001, 9002], "stratum": [0, 3], "row": [0, 249],
                          "col": [0, 399], "reference": [None, None]})
    pts = write_points(tmp_path / "points.gpkg", pd.concat([table, extra]), transform,
                       "EPSG:32633")
    out = tmp_path / "report"
    rc = main(["assess", "--map", str(map_path), "--points", str(pts), "--output", str(out),
               "--classes", *CLASSES, "--block", "64"])
    assert rc == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert "640 of 642 points used; overall accuracy 0.9465" in stdout
    res = json.loads((out / "assessment.json").read_text())
    check_olofsson(res)
    assert res["area_unit"] == "ha" and res["points"]["no_reference_label"] == 2
    assert res["sample_counts"] == COUNTS.tolist()
    md = (out / "assessment.md").read_text()
    assert "| overall accuracy | 0.9465 +- 0.0185 |" in md
    assert "| Deforestation | 18,000.0 | 21,157.8 +- 6,157.6 |" in md
    assert (out / "assessment.png").read_bytes()[:4] == b"\x89PNG"
    rc = main(["assess", "--map", str(map_path), "--points", str(pts), "--output", str(out),
               "--quiet"])
    assert rc == 1 and "output exists" in capsys.readouterr().err


def test_points_in_another_crs_and_errors(tmp_path, capsys):
    map_path, table, transform = olofsson_on_disk(tmp_path)
    from rasterio.warp import transform as warp

    from sitsformer.maps.points import pixel_centres
    xs, ys = pixel_centres(table["row"], table["col"], transform)
    lon, lat = warp("EPSG:32633", "EPSG:4326", xs, ys)
    # written in lon/lat: rows/cols are only used to place the points, so place them so
    import pyogrio.raw
    import shapely
    geoms = shapely.to_wkb(shapely.points(lon, lat))
    path = tmp_path / "wgs84.gpkg"
    idx = table["reference"].map(CLASSES.index).to_numpy()
    pyogrio.raw.write(str(path), geoms, [table["point_id"].to_numpy(), idx], ["point_id", "ref"],
                      driver="GPKG", geometry_type="Point",
                      crs=rasterio.crs.CRS.from_epsg(4326).to_wkt())
    rc = main(["assess", "--map", str(map_path), "--points", str(path), "--output",
               str(tmp_path / "r"), "--reference", "ref", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "r" / "assessment.json").read_text())
    assert res["sample_counts"] == COUNTS.tolist()  # the same pixels after reprojection
    rc = main(["assess", "--map", str(map_path), "--points", str(path), "--output",
               str(tmp_path / "r2"), "--reference", "label"])
    assert rc == 1 and "no reference label column 'label'" in capsys.readouterr().err
    bad = table.assign(stratum=np.where(table["point_id"] == 5, 2, table["stratum"]))
    pts = write_points(tmp_path / "bad.gpkg", bad, transform, "EPSG:32633")
    rc = main(["assess", "--map", str(map_path), "--points", str(pts), "--output",
               str(tmp_path / "r3"), "--classes", *CLASSES])
    err = capsys.readouterr().err
    assert rc == 1 and "point 5 has stratum 2 but the map" in err
    wrong = table.assign(reference=np.where(table["point_id"] == 7, "Savanna",
                                            table["reference"]))
    pts = write_points(tmp_path / "wrong.gpkg", wrong, transform, "EPSG:32633")
    rc = main(["assess", "--map", str(map_path), "--points", str(pts), "--output",
               str(tmp_path / "r4"), "--classes", *CLASSES])
    assert rc == 1 and "point 7: reference label 'Savanna'" in capsys.readouterr().err


def test_reference_labels_outside_the_map_classes_are_refused(tmp_path, capsys):
    """Issue 32: a reference label 9 on a 4-class map silently added classes 4..9 (OA 1.0 ->
    0.922, exit 0). Refused, naming the points and their labels."""
    map_path, table, transform = olofsson_on_disk(tmp_path)
    idx = table["reference"].map(CLASSES.index).to_numpy().copy()
    idx[[4, 10]] = 9
    pts = write_points(tmp_path / "nine.gpkg", table.assign(reference=idx), transform,
                       "EPSG:32633")
    out = tmp_path / "r"
    rc = main(["assess", "--map", str(map_path), "--points", str(pts), "--output", str(out),
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.strip() == (
        f"error: {pts}: 2 point(s) have a reference label that is not a class of the map "
        f"{map_path} (4 classes, 0..3): point 5: 9, point 11: 9; expected a class index "
        "below 4 or a class name (pass --classes with every class name when the legend has "
        "classes the map does not show)")
    assert not (out / "assessment.json").exists()
    # with the legend given, a class the map does not show is a class: accepted
    rc = main(["assess", "--map", str(map_path), "--points", str(pts), "--output", str(out),
               "--quiet", "--classes", *CLASSES, *[f"c{i}" for i in range(4, 10)]])
    assert rc == 0, capsys.readouterr().err


def test_an_all_nodata_map_is_a_clear_error(tmp_path, capsys):
    """Issue 32: an all-nodata class map died with a raw ``KeyError: 1``."""
    map_path, table, transform = olofsson_on_disk(tmp_path)
    with rasterio.open(map_path, "r+") as ds:
        ds.write(np.full((1, ds.height, ds.width), 255, np.uint8))
    pts = write_points(tmp_path / "p.gpkg", table.assign(
        stratum_name=table["stratum"].map(lambda i: CLASSES[i])), transform, "EPSG:32633")
    rc = main(["assess", "--map", str(map_path), "--points", str(pts), "--output",
               str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and err.strip() == (
        f"error: {map_path}: every pixel is nodata (255): the map has no class to assess; "
        "expected a class map with mapped pixels")
