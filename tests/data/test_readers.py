"""Readers: each real source in shared/data, generated fixtures in real layouts, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sitsformer.data import (BandCountError, DataError, DataWarning, DateParseError, GeoTiffTimeSeries,
                             IGNORE_INDEX, LabelError, NoClearDateError, PastisDataset,
                             SourceNotRecognizedError, collate, detect_source, open_source,
                             parse_file_date, read_csv_table, shared_data_dir)
from sitsformer.data.sample import check_sample


ROI = "s2_sen2rts_roi/raw/inst/extdata/sen2r/sampleroi"
EOPATCH = "s2_slovenia_eopatch/raw/example_data/TestEOPatch"


def test_shared_data_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SITSFORMER_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path
    monkeypatch.setenv("SITSFORMER_SHARED_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"SITSFORMER_SHARED_DATA=.*missing.*not a folder"):
        shared_data_dir()


def test_shared_data_dir_beside_the_clone(monkeypatch, shared_data):
    monkeypatch.delenv("SITSFORMER_SHARED_DATA", raising=False)
    clone = Path(__file__).resolve().parents[2]
    if shared_data.resolve() != (clone.parent / "shared" / "data").resolve():
        pytest.skip("the example data is not beside this clone")
    assert shared_data_dir().resolve() == shared_data.resolve()


def test_shared_data_dir_outside_a_clone_is_a_clear_error(tmp_path):
    # an installed copy of the module, with no clone around it (a real import of that copy)
    import shutil
    import subprocess
    import sys

    pkg = Path(__file__).resolve().parents[2] / "src" / "sitsformer"
    site = tmp_path / "site"
    shutil.copytree(pkg, site / "sitsformer", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "SITSFORMER_SHARED_DATA"}
    env["PYTHONPATH"] = str(site)
    r = subprocess.run([sys.executable, "-c", "from sitsformer.data import shared_data_dir; "
                        "shared_data_dir()"], capture_output=True, text=True, env=env)
    assert r.returncode == 1
    assert "set SITSFORMER_SHARED_DATA=" in r.stderr and str(site / "sitsformer") in r.stderr


def test_victoria_csv_matches_npz(shared_data):
    with pytest.warns(DataWarning, match="dates are unknown"):
        ds = open_source(shared_data / "s2_victoria_igarss2019/raw", bands="s2")
    z = np.load(shared_data / "s2_victoria_igarss2019/s2_victoria_igarss2019.npz")
    assert len(ds) == 800 and ds.bands == [str(b) for b in z["bands"]]
    np.testing.assert_array_equal(ds.x[:, :, :, 0, 0], z["x"])
    np.testing.assert_array_equal(ds.labels, z["y"])
    np.testing.assert_array_equal(ds.groups, z["group"])
    np.testing.assert_array_equal(ds.split, z["split"])
    assert ds.classes == [str(c) for c in z["classes"]]
    assert ds.meta["time_axis"] == "t_index"
    s = ds[5]
    assert "dates" not in s
    np.testing.assert_array_equal(s["doy"], np.arange(1, 74))
    assert int(s["group"]) == z["group"][5] and int(s["label"]) == z["y"][5]
    check_sample(s)


def _write_csv(path, n=6, t=3, c=2, seed=0):
    rng = np.random.default_rng(seed)
    vals = rng.integers(0, 100, (n, t * c)).astype(float)
    cols = ["label", "polygon_id"] + [f"v{i}" for i in range(t * c)]
    rows = np.column_stack([np.arange(n) % 2, np.arange(n) // 2, vals])
    path.write_text(",".join(cols) + "\n" + "\n".join(",".join(f"{v:g}" for v in r)
                                                      for r in rows))
    return vals


def test_csv_layouts_and_options(tmp_path):
    vals = _write_csv(tmp_path / "t.csv")
    dm = read_csv_table(tmp_path / "t.csv", n_bands=2, dates=["2020-01-01", "2020-02-01",
                                                               "2020-03-01"])
    bm = read_csv_table(tmp_path / "t.csv", n_dates=3, layout="band_major",
                        start_date="2020-01-01", interval_days=10)
    np.testing.assert_array_equal(dm.x[0, :, :, 0, 0], vals[0].reshape(3, 2))
    np.testing.assert_array_equal(bm.x[0, :, :, 0, 0], vals[0].reshape(2, 3).T)
    np.testing.assert_array_equal(dm[0]["doy"], [1, 32, 61])
    assert "dates_assumed" in bm.meta and str(bm[0]["dates"][2]) == "2020-01-21"
    with pytest.raises(BandCountError, match=r"t.csv.*4 bands x 1 dates = 4 .* found 6"):
        read_csv_table(tmp_path / "t.csv", n_bands=4, n_dates=1)
    with pytest.raises(LabelError, match=r"label outside the class list 0..0 \(classes=\): rows t.csv row 1 \(1\), "
                       r"t.csv row 3"):
        read_csv_table(tmp_path / "t.csv", n_bands=2, classes=["only"],
                       start_date="2020-01-01", interval_days=5)


def test_csv_nan_observations_masked_and_counted(tmp_path):
    p = tmp_path / "nan.csv"
    p.write_text("label,group,A_20200101,B_20200101,A_20200111,B_20200111\n"
                 "0,1,1,2,3,4\n1,2,,5,6,7\n0,3,,,,\n")
    with pytest.warns(DataWarning, match="excluded 1 sample"):
        ds = read_csv_table(p, bands=["A", "B"])  # not known band names: bands= says so
    assert ds.bands == ["A", "B"] and len(ds) == 2  # row 2 has no valid date: excluded
    np.testing.assert_array_equal(ds.mask, [[True, True], [False, True]])
    assert ds.meta["exclusions"]["samples_without_clear_date"]["count"] == 1
    assert ds.meta["exclusions"]["nan_or_nodata_observations"]["count"] == 3
    assert np.isfinite(ds.x).all()
    with pytest.raises(NoClearDateError, match="nan.csv row 2"):
        read_csv_table(p, bands="A,B", on_no_clear="error")


@pytest.mark.parametrize("name,expected", [
    ("S2A2A_20200109_022_sampleroi_NDVI_10.tif", "2020-01-09"),
    ("20190704_LEVEL2_SEN2B_BOA.tif", "2019-07-04"),
    ("S2B_MSIL2A_20210512T101559_N0300_R065_T32TQR_20210512T131357.tif", "2021-05-12"),
    ("T32TQR_20210512T101559_B04_10m.jp2", "2021-05-12"),
    ("ndvi_2021-06-30.tif", "2021-06-30"),
])
def test_file_name_dates(name, expected):
    assert str(parse_file_date(name)) == expected


def test_unparsable_dates():
    with pytest.raises(DateParseError, match="S2A_20201345_x.tif.*20201345"):
        parse_file_date("S2A_20201345_x.tif")
    with pytest.raises(DateParseError, match="no date found"):
        parse_file_date("image.tif")


def test_geotiff_roi_matches_npz(shared_data):
    root = shared_data / ROI
    stack = GeoTiffTimeSeries(root / "NDVI", cloud_folder=root / "SCL", scale=10000)
    z = np.load(shared_data / "s2_sen2rts_roi/s2_sen2rts_roi.npz")
    assert (stack.height, stack.width, len(stack)) == (7, 25, 60)
    assert stack.crs.to_epsg() == 32632 and stack.transform.c == 734880.0
    w = stack.read_window(0, 0, 7, 25)
    np.testing.assert_allclose(w["sequence"][:, 0], z["x"][0, :, 0], rtol=1e-6)
    np.testing.assert_array_equal(w["pixel_mask"], z["mask"][0])
    np.testing.assert_array_equal(w["dates"].astype(str), z["dates"])
    part = stack.read_window(2, 5, 3, 4)
    np.testing.assert_array_equal(part["sequence"], w["sequence"][:, :, 2:5, 5:9])
    np.testing.assert_array_equal(part["pixel_mask"], w["pixel_mask"][:, 2:5, 5:9])
    assert part["transform"].c == 734880.0 + 50 and part["transform"].f == 4973170.0 - 20


def test_geotiff_fixture_cloud_resampling_and_labels(tmp_path, geotiff_stack):
    fx = geotiff_stack(tmp_path)
    stack = GeoTiffTimeSeries(fx["data"], cloud_folder=fx["scl"])
    assert stack.bands == ["B2", "B3", "B4"]
    w = stack.read_window(0, 0, 6, 8)
    np.testing.assert_array_equal(w["pixel_mask"], fx["clear"])
    assert w["sequence"][1, :, 0, 0].tolist() == [0, 0, 0]  # nodata -> 0 and masked
    with pytest.warns(DataWarning, match=r"excluded 2 pixel\(s\) with no clear date \(pixel "
                      r"\(row 0, col 0\), pixel \(row 0, col 1\)\)"):
        ds = open_source(fx["data"], cloud_folder=fx["scl"], labels=fx["labels"], patch_size=3,
                         class_names={3: "crop", 7: "forest"})
    lab = fx["label_raster"]
    assert ds.classes == ["crop", "forest"] and ds.meta["class_codes"] == [3, 7]
    assert "class_colors" not in ds.meta  # no colour table: the maps use default colours
    with rasterio.open(fx["labels"], "r+") as dst:  # a colour table: the maps use it
        dst.write_colormap(1, {3: (255, 210, 125, 255), 7: (50, 150, 0, 255)})
    with pytest.warns(DataWarning, match="excluded 2 pixel"):
        coloured = open_source(fx["data"], cloud_folder=fx["scl"], labels=fx["labels"],
                               class_names={3: "crop", 7: "forest"})
    assert coloured.meta["class_colors"] == ["#ffd27d", "#329600"]
    assert ds.meta["exclusions"]["pixels_without_label"]["count"] == int((lab == 0).sum())
    kept = {tuple(rc) for rc in ds.coords}
    assert kept <= {tuple(rc) for rc in np.argwhere(lab > 0)}
    i = next(k for k, (r, c) in enumerate(ds.coords) if 0 < r < 5 and 0 < c < 7)
    r, c = ds.coords[i]
    s = ds[i]
    v = np.where(fx["values"] == -32768, 0, fx["values"])
    np.testing.assert_array_equal(s["sequence"], v[:, :, r - 1:r + 2, c - 1:c + 2])
    np.testing.assert_array_equal(s["pixel_mask"], fx["clear"][:, r - 1:r + 2, c - 1:c + 2])
    np.testing.assert_array_equal(s["mask"], fx["clear"][:, r, c])
    assert s["label"] == [3, 7].index(lab[r, c])
    with pytest.raises(LabelError, match=r"labels.tif: label code 7 at pixel"):
        open_source(fx["data"], labels=fx["labels"], class_names={3: "crop"})


@pytest.mark.parametrize("naming", ["force", "safe"])
def test_geotiff_namings(tmp_path, naming, geotiff_stack):
    fx = geotiff_stack(tmp_path, naming=naming, n_dates=3)
    stack = GeoTiffTimeSeries(fx["data"])
    np.testing.assert_array_equal(stack.dates, fx["dates"])


def test_label_polygons_reprojected_and_outside_reported(tmp_path, geotiff_stack):
    import pyogrio.raw
    import shapely
    from pyproj import Transformer

    fx = geotiff_stack(tmp_path, n_dates=3)
    to_ll = Transformer.from_crs("EPSG:32632", "EPSG:4326", always_xy=True)
    boxes = [shapely.box(600000, 4999960, 600030, 5000000),  # cols 0-2, rows 0-3
             shapely.box(600050, 4999940, 600080, 4999970),  # cols 5-7, rows 3-5
             shapely.box(700000, 4000000, 700100, 4000100)]  # far outside
    geoms = [shapely.transform(b.segmentize(5), lambda xy: np.column_stack(
        to_ll.transform(xy[:, 0], xy[:, 1]))) for b in boxes]
    gpkg = tmp_path / "fields.gpkg"
    pyogrio.raw.write(gpkg, np.array(shapely.to_wkb(geoms), dtype=object),
                      [np.array(["wheat", "maize", "rice"], dtype=object)], ["class"],
                      geometry_type="Polygon", crs="EPSG:4326", driver="GPKG")
    with pytest.warns(DataWarning, match="outside the raster"):
        ds = open_source(fx["data"], labels=gpkg)
    assert ds.meta["exclusions"]["label_polygons_outside_raster"]["count"] == 1
    assert ds.meta["label_polygons_reprojected_from"]
    assert ds.classes == ["maize", "rice", "wheat"]
    rc = {tuple(x) for x in ds.coords[ds.groups == 0]}
    assert rc == {(r, c) for r in range(4) for c in range(3)}
    assert {tuple(x) for x in ds.coords[ds.groups == 1]} == {
        (r, c) for r in range(3, 6) for c in range(5, 8)}
    assert set(ds.labels[ds.groups == 1]) == {0}


def test_eopatch(shared_data):
    ds = open_source(shared_data / EOPATCH)
    assert len(ds) + 155 == 101 * 100
    # names from vector_timeless/LULC.gpkg (LULC_ID/LULC_NAME), spelled as upstream spells them
    assert ds.classes == ["cultivated land", "forest", "grassland", "schrubland",
                          "artificial surface"]
    assert ds.meta["class_codes"] == [1, 2, 3, 4, 8]
    assert ds.class_counts() == {"cultivated land": 11, "forest": 7601, "grassland": 1777,
                                 "schrubland": 358, "artificial surface": 198}
    assert ds.meta["crs"] == "EPSG:32633" and len(ds.meta["transform"]) == 6
    valid = np.load(shared_data / EOPATCH / "mask/IS_VALID.npy")[..., 0]
    s = ds[100]
    r, c = ds.coords[100]
    np.testing.assert_array_equal(s["mask"], valid[:, r, c])
    assert str(s["dates"][0]) == "2015-07-11" and s["doy"][0] == 192


def test_pastis_fixture(tmp_path, pastis_folder):
    fx = pastis_folder(tmp_path / "PASTIS")
    assert detect_source(tmp_path / "PASTIS") == "pastis"
    ds = open_source(tmp_path / "PASTIS")
    assert len(ds) == 3 and ds.meta["crs"] == "EPSG:2154" and ds.classes[19] == "Void label"
    s = ds[2]
    np.testing.assert_array_equal(s["sequence"], fx["x"][2])
    np.testing.assert_array_equal(s["dates"], fx["dates"][2])
    y = fx["y"][2][0].astype(np.int64)
    np.testing.assert_array_equal(s["label"], np.where(y == 19, IGNORE_INDEX, y))
    b = collate([ds[0], ds[2]])
    assert tuple(b["sequence"].shape) == (2, 6, 10, 4, 4) and b["mask"][0].sum() == 4
    only = PastisDataset(tmp_path / "PASTIS", folds=[2])
    assert len(only) == 1 and only.patch_ids == [10001]


def test_npz_sources(shared_data):
    ds = open_source(shared_data / "landsat8_rondonia/landsat8_rondonia.npz")
    assert len(ds) == 160 and ds.bands == ["NDVI", "EVI"] and ds.coords.shape == (160, 2)
    assert str(ds[0]["dates"][0]) == "2018-07-12"
    slo = open_source(shared_data / "s2_slovenia_eopatch/s2_slovenia_eopatch.npz")
    s = slo[0]
    assert s["label"].shape == (101, 100) and (s["label"] == IGNORE_INDEX).sum() == 155


def test_not_recognized(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceNotRecognizedError, match="not a recognised source"):
        open_source(tmp_path)


def test_geotiff_band_count_and_grid_errors(tmp_path, geotiff_stack):
    fx = geotiff_stack(tmp_path, n_dates=3)
    with pytest.raises(BandCountError, match=r"3 bands in the file, 2 band names given"):
        GeoTiffTimeSeries(fx["data"], bands=["B4", "B8"])
    odd = fx["data"] / "S2A2A_20210401_022_roi_BOA_10.tif"
    with rasterio.open(odd, "w", driver="GTiff", height=6, width=8, count=2, dtype="int16",
                       crs="EPSG:32632", transform=rasterio.transform.from_origin(
                           600000, 5000000, 10, 10)) as dst:
        dst.write(np.zeros((2, 6, 8), np.int16))
    with pytest.raises(BandCountError, match=r"S2A2A_20210401_022_roi_BOA_10.tif: 2 bands, "
                                             r"expected 3"):
        GeoTiffTimeSeries(fx["data"])


def test_eopatch_bad_timestamps(tmp_path):
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "NDVI.npy", np.zeros((2, 3, 3, 1), np.float32))
    (tmp_path / "timestamps.json").write_text(json.dumps(["2020-01-01T10:00:00", "soon"]))
    with pytest.raises(DateParseError, match=r"timestamps.json: entry 1 'soon'"):
        open_source(tmp_path, label=None, valid_mask=None)
    (tmp_path / "timestamps.json").write_text(json.dumps(["2020-01-01", "2020-01-11"]))
    ds = open_source(tmp_path, label=None, valid_mask=None)
    assert len(ds) == 9 and ds.labels is None and ds[4]["doy"].tolist() == [1, 11]


def test_pastis_label_outside_class_list(tmp_path, pastis_folder):
    pastis_folder(tmp_path / "P", n_patches=1)
    np.save(tmp_path / "P" / "ANNOTATIONS" / "TARGET_10000.npy", np.full((3, 4, 4), 25, np.uint8))
    with pytest.raises(LabelError, match=r"TARGET_10000.npy: class 25 at \(row 0, col 0\)"):
        open_source(tmp_path / "P")[0]


def test_force_folder_uses_boa_and_qai(tmp_path, geotiff_stack):
    fx = geotiff_stack(tmp_path, naming="force", n_dates=3)
    stack = GeoTiffTimeSeries(fx["data"])
    assert [f.name.endswith("_BOA.tif") for f in stack.files] == [True] * 3
    assert stack.cloud_kind == "force_qai"
    w = stack.read_window(0, 0, 6, 8)
    expect = (fx["values"][:, 0] % 3 != 0) & (fx["values"] != -32768).all(axis=1)
    np.testing.assert_array_equal(w["pixel_mask"], expect)


def test_sen2r_parent_folder(shared_data):
    roi = shared_data / ROI
    assert detect_source(roi) == "geotiff"
    stack = GeoTiffTimeSeries(roi, scale=10000)
    assert stack.folder.name == "NDVI" and stack.cloud_files[0].parent.name == "SCL"
    z = np.load(shared_data / "s2_sen2rts_roi/s2_sen2rts_roi.npz")
    np.testing.assert_array_equal(stack.read_window(0, 0, 7, 25)["pixel_mask"], z["mask"][0])


def test_csv_band_major_named_columns_and_bad_column_date(tmp_path):
    p = tmp_path / "bm.csv"
    p.write_text("class,fid,NIR_2020-05-01,NIR_2020-06-01,RED_2020-05-01,RED_2020-06-01\n"
                 "1,7,10,11,20,21\n")
    ds = read_csv_table(p)
    assert ds.meta["layout"] == "named" and ds.bands == ["NIR", "RED"]  # bands x dates by name
    np.testing.assert_array_equal(ds.x[0, :, :, 0, 0], [[10, 20], [11, 21]])
    np.testing.assert_array_equal(ds[0]["dates"].astype(str), ["2020-05-01", "2020-06-01"])
    p.write_text("class,fid,NIR_20201301,RED_20201301\n1,7,10,20\n")
    with pytest.raises(DateParseError, match="bm.csv column NIR_20201301: a date in the column"):
        read_csv_table(p)
